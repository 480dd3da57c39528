"""``zonda connections ...`` and ``zonda rotate-fernet-key``, in-process against a temp ZONDA_HOME and SQLite."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from zonda.cli import main
from zonda.crypto import generate_key

PASSWORD = "Pa$$w0rd:@/?#%"


@pytest.fixture
def key(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    value = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", value)
    return value


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def add_sample(capsys) -> None:
    code, out, err = run(
        capsys,
        "connections", "add", "my_db",
        "--conn-type", "postgres",
        "--conn-host", "db.example.com",
        "--conn-login", "me",
        "--conn-password", PASSWORD,
        "--conn-port", "5432",
        "--conn-schema", "analytics",
        "--conn-extra", '{"sslmode": "require", "api_token": "tok-123456"}',
        "--conn-description", "The warehouse",
    )  # fmt: skip
    assert code == 0, err
    assert "added connection my_db (postgres)" in out
    assert PASSWORD not in out


def test_add_list_get_delete(key, capsys, zonda_home):
    add_sample(capsys)
    code, out, _ = run(capsys, "connections", "list")
    assert code == 0
    assert "my_db" in out and "db.example.com" in out and "***" in out
    assert PASSWORD not in out and "tok-123456" not in out

    code, out, _ = run(capsys, "connections", "list", "--output", "json")
    (row,) = json.loads(out)
    assert row["password"] == "***"
    assert row["extra"] == {"sslmode": "require", "api_token": "***"}
    assert row["description"] == "The warehouse"
    assert PASSWORD not in out

    code, out, _ = run(capsys, "connections", "get", "my_db", "-o", "json")
    (row,) = json.loads(out)
    assert (row["host"], row["port"], row["login"], row["password"]) == ("db.example.com", 5432, "me", "***")
    assert row["source"].startswith("metastore sqlite:///")
    assert PASSWORD not in out

    db = sqlite3.connect(zonda_home / "zonda.db")
    (raw,) = db.execute("SELECT password, extra FROM connection").fetchall()
    db.close()
    assert PASSWORD not in raw[0] and "tok-123456" not in raw[1]

    code, out, _ = run(capsys, "connections", "delete", "my_db")
    assert code == 0 and "deleted connection my_db" in out
    code, out, err = run(capsys, "connections", "get", "my_db")
    assert code == 1
    assert "'my_db'" in err and "zonda connections add" in err


def test_add_from_uri_and_json(key, capsys):
    code, _, err = run(capsys, "connections", "add", "u", "--conn-uri", "http://me:p%40ss@api.example.com:8443/v1?a=b")
    assert code == 0, err
    code, _, err = run(capsys, "connections", "add", "j", "--conn-json", '{"conn_type": "http", "host": "h"}')
    assert code == 0, err
    code, out, _ = run(capsys, "connections", "get", "u", "-o", "json")
    (row,) = json.loads(out)
    assert (row["conn_type"], row["host"], row["schema"], row["extra"]) == ("http", "api.example.com", "v1", {"a": "b"})


def test_add_refuses_duplicates_and_mixed_flags(key, capsys):
    add_sample(capsys)
    code, _, err = run(capsys, "connections", "add", "my_db", "--conn-uri", "http://h")
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "connections", "add", "x", "--conn-uri", "http://h", "--conn-host", "other")
    assert code == 1 and "--conn-host go with --conn-type" in err


def test_add_with_password_but_no_key_makes_one(zonda_home, capsys):
    code, _, err = run(capsys, "connections", "add", "x", "--conn-type", "http", "--conn-password", "pw")
    assert code == 0, err
    assert (zonda_home / "zonda.toml").stat().st_mode & 0o777 == 0o600
    assert "fernet_key" in (zonda_home / "zonda.toml").read_text()


def test_get_finds_environment_connections(key, capsys, monkeypatch):
    monkeypatch.setenv("ZONDA_CONN_FROM_ENV", "http://u:env-pass-123@h")
    code, out, _ = run(capsys, "connections", "get", "from_env")
    assert code == 0
    assert "environment variable ZONDA_CONN_FROM_ENV" in out
    assert "env-pass-123" not in out


def test_delete_unknown(key, capsys, monkeypatch):
    code, _, err = run(capsys, "connections", "delete", "ghost")
    assert code == 1 and "'ghost'" in err
    monkeypatch.setenv("ZONDA_CONN_GHOST", "http://h")
    code, _, err = run(capsys, "connections", "delete", "ghost")
    assert code == 1 and "ZONDA_CONN_GHOST" in err


def test_test_is_refused_unless_enabled(key, capsys, monkeypatch):
    add_sample(capsys)
    code, _, err = run(capsys, "connections", "test", "my_db")
    assert code == 1
    assert "test_connection" in err and "ZONDA__CORE__TEST_CONNECTION=enabled" in err
    monkeypatch.setenv("ZONDA__CORE__TEST_CONNECTION", "enabled")
    assert run(capsys, "connections", "add", "odd", "--conn-uri", "nosuchtype://u:p@h")[0] == 0
    code, _, err = run(capsys, "connections", "test", "odd")
    assert code == 1
    assert "no hook knows how to test conn type 'nosuchtype'" in err


def test_test_runs_the_hook_when_one_is_known(key, capsys, monkeypatch):
    from zonda.hooks import BaseHook
    from zonda.hooks.base import set_hook_class_resolver

    class PingHook(BaseHook):
        conn_name_attr = "ping_conn_id"

        def __init__(self, ping_conn_id):
            self.conn = self.get_connection(ping_conn_id)

        def test_connection(self):
            return True, f"reached {self.conn.host}"

    monkeypatch.setenv("ZONDA__CORE__TEST_CONNECTION", "enabled")
    monkeypatch.setenv("ZONDA_CONN_PING", "ping://ping-host")
    set_hook_class_resolver(lambda conn_type: PingHook if conn_type == "ping" else None)
    try:
        code, out, _ = run(capsys, "connections", "test", "ping")
    finally:
        set_hook_class_resolver(None)
    assert code == 0
    assert "reached ping-host" in out


def test_export_and_import(key, capsys, tmp_path, zonda_home, monkeypatch):
    add_sample(capsys)
    run(capsys, "connections", "add", "other", "--conn-uri", "http://h")
    target = tmp_path / "conns.json"
    code, out, err = run(capsys, "connections", "export", str(target))
    assert code == 0
    assert "exported 2 connection(s)" in out
    assert "warning" in err and "plain text" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    data = json.loads(target.read_text())
    assert data["my_db"]["password"] == PASSWORD
    assert data["my_db"]["extra"]["api_token"] == "tok-123456"

    # Into a fresh installation with another key.
    other_home = tmp_path / "other_home"
    other_home.mkdir()
    monkeypatch.setenv("ZONDA_HOME", str(other_home))
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", generate_key())
    code, out, _ = run(capsys, "connections", "import", str(target))
    assert code == 0 and "2 added" in out
    code, out, _ = run(capsys, "connections", "import", str(target))
    assert "skipped my_db" in out and "2 skipped" in out
    data["my_db"]["host"] = "changed"
    target.write_text(json.dumps(data))
    code, out, _ = run(capsys, "connections", "import", str(target), "--overwrite")
    assert "2 replaced" in out
    code, out, _ = run(capsys, "connections", "export", "-")
    assert json.loads(out)["my_db"]["host"] == "changed"
    assert json.loads(out)["my_db"]["password"] == PASSWORD


def test_import_bad_file(key, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    code, _, err = run(capsys, "connections", "import", str(bad))
    assert code == 1 and "not valid JSON" in err


def test_rotate_fernet_key(zonda_home, capsys, monkeypatch):
    old = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", old)
    add_sample(capsys)
    run(capsys, "connections", "add", "plain", "--conn-uri", "http://h")
    new = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", f"{new},{old}")
    code, out, _ = run(capsys, "rotate-fernet-key")
    assert code == 0 and "re-encrypted 1 connection(s)" in out
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", new)
    code, out, _ = run(capsys, "connections", "export", "-")
    assert json.loads(out)["my_db"]["password"] == PASSWORD


def test_rotate_generate_prints_a_key(zonda_home, capsys):
    code, out, _ = run(capsys, "rotate-fernet-key", "--generate")
    assert code == 0
    Fernet(out.strip().encode())
    assert not (zonda_home / "zonda.db").exists()


def test_list_survives_a_wrong_key(key, capsys, monkeypatch):
    add_sample(capsys)
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", generate_key())
    code, out, _ = run(capsys, "connections", "list", "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["password"] == "***" and "not in [core] fernet_key" in row["extra"]
