"""A fresh installation stores connections without manual steps: the Fernet key is made on first need and kept in
``zonda.toml`` (rest of the file preserved, atomic, owner-only, one key even under concurrent first use)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from zonda.cli import main
from zonda.config import load_settings
from zonda.connection import Connection
from zonda.fernet_bootstrap import ensure_fernet_key, with_core_key

ENSURE = (
    "from zonda.config import load_settings; from zonda.fernet_bootstrap import ensure_fernet_key; "
    "print(ensure_fernet_key(load_settings()))"
)


def core_key(home: Path) -> str:
    return tomllib.loads((home / "zonda.toml").read_text())["core"]["fernet_key"]


@pytest.mark.parametrize(
    ("before", "kept"),
    [
        ("", []),
        ("# my settings\n[core]\nparallelism = 4\n\n[logging]\nlogging_level = 'DEBUG'\n", ["# my settings"]),
        ('[core]\nfernet_key = ""  # fill me\nparallelism = 4\n', ["parallelism = 4"]),
        ("[logging]\nlogging_level = 'DEBUG'", ["logging_level = 'DEBUG'"]),
        ("[ core ]   # core things\nload_examples = false\n[core_extra]\nx = 1\n", ["[core_extra]", "x = 1"]),
    ],
)
def test_key_line_is_added_to_core_and_the_rest_is_kept(before: str, kept: list[str]) -> None:
    text = with_core_key(before, "KEY")
    data = tomllib.loads(text)
    assert data["core"]["fernet_key"] == "KEY"
    for line in kept:
        assert line in text
    old = tomllib.loads(before)
    for section, table in old.items():
        for key, value in table.items():
            if key != "fernet_key":
                assert data[section][key] == value


def test_first_connection_add_makes_a_key_that_later_commands_use(
    zonda_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (zonda_home / "zonda.toml").write_text("# mine\n[core]\nload_examples = false\n")
    assert main(["connections", "add", "db", "--conn-uri", "postgres://u:pa55word-1@h/x"]) == 0
    text = (zonda_home / "zonda.toml").read_text()
    assert text.startswith("# mine\n[core]\n") and "load_examples = false" in text
    assert (zonda_home / "zonda.toml").stat().st_mode & 0o777 == 0o600
    key = core_key(zonda_home)
    assert main(["connections", "add", "db2", "--conn-uri", "postgres://u:other-pw-2@h/x"]) == 0
    assert core_key(zonda_home) == key  # made once
    capsys.readouterr()
    assert main(["connections", "get", "db", "--output", "json"]) == 0
    assert "pa55word-1" not in capsys.readouterr().out


def test_a_process_started_before_the_key_existed_reads_it(zonda_home: Path) -> None:
    from zonda.cli._loading import open_metastore
    from zonda.secrets.metastore import MetastoreBackend

    early = load_settings()  # a service that started on a fresh home: no key in its settings
    assert main(["db", "init"]) == 0  # writes the key, as `zonda standalone` does before services start
    assert core_key(zonda_home)
    store = open_metastore(load_settings())
    try:
        MetastoreBackend(store, load_settings()).save(Connection(conn_id="c", conn_type="http", password="pw-late-1"))
        assert MetastoreBackend(store, early).get_connection("c").password == "pw-late-1"
    finally:
        store.dispose()


def test_environment_key_wins_and_nothing_is_written(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", key)
    assert ensure_fernet_key(load_settings()) == key
    assert main(["connections", "add", "c", "--conn-type", "http", "--conn-password", "secret-pw"]) == 0
    assert not (zonda_home / "zonda.toml").exists()


def test_concurrent_first_use_ends_with_one_key(zonda_home: Path) -> None:
    env = {**os.environ, "ZONDA_HOME": str(zonda_home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", ENSURE], env=env, stdout=subprocess.PIPE, text=True) for _ in range(6)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(keys) == 1 and keys == {core_key(zonda_home)}
    assert (zonda_home / "zonda.toml").read_text().count("fernet_key") == 1


def test_shared_config_holding_a_key_is_warned_about(zonda_home: Path) -> None:
    config = zonda_home / "zonda.toml"
    from cryptography.fernet import Fernet

    config.write_text(f'[core]\nfernet_key = "{Fernet.generate_key().decode()}"\n')
    env = {**os.environ, "ZONDA_HOME": str(zonda_home)}
    command = [sys.executable, "-m", "zonda", "config", "get-value", "core", "parallelism"]
    for mode, warned in ((0o644, True), (0o660, True), (0o600, False)):
        config.chmod(mode)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert ("chmod 600" in result.stderr) is warned, result.stderr
        assert result.stderr.count("chmod 600") <= 1
