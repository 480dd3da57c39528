"""The session key: made per installation on first need (mode 0600 whatever the umask), kept across restarts,
masked; a known, empty or short key refuses to start with one line naming the fix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from web_marks import SQLITE_ONLY

from zonda.config import load_settings
from zonda.exceptions import ZondaConfigError
from zonda.web.secret_key import FILE_NAME, ensure_secret_key

ROOT = Path(__file__).resolve().parents[2]


def test_the_key_is_made_once_private_and_random(zonda_home: Path) -> None:
    old = os.umask(0)  # the most permissive umask: the file must still be owner-only
    try:
        key = ensure_secret_key(load_settings(zonda_home))
    finally:
        os.umask(old)
    path = zonda_home / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 48 and path.read_text().strip() == key
    assert ensure_secret_key(load_settings(zonda_home)) == key  # kept across restarts
    assert not list(zonda_home.glob(f".{FILE_NAME}*"))  # no temporary left behind


def test_two_installations_get_different_keys(tmp_path: Path) -> None:
    keys = {ensure_secret_key(load_settings(tmp_path / name)) for name in ("one", "two")}
    assert len(keys) == 2


def test_the_key_is_masked(zonda_home: Path) -> None:
    from zonda.masking import get_masker

    key = ensure_secret_key(load_settings(zonda_home))
    assert key not in get_masker().redact_text(f"the key is {key}")


def test_a_configured_key_wins_and_no_file_is_made(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = "k" * 20 + "some-long-random-value-0123456789"
    monkeypatch.setenv("ZONDA__WEBSERVER__SECRET_KEY", good)
    assert ensure_secret_key(load_settings(zonda_home)) == good
    assert not (zonda_home / FILE_NAME).exists()


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("changeme", "well-known example"),
        ("temporary_key", "well-known example"),
        ("ChangeMe", "well-known example"),
        ("dev", "well-known example"),
        ("192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf", "well-known example"),
        ("short-but-not-known", "under 32"),
    ],
)
def test_a_weak_configured_key_refuses_to_start(zonda_home: Path, key: str, why: str) -> None:
    (zonda_home / "zonda.toml").write_text(f'[webserver]\nsecret_key = "{key}"\n')
    with pytest.raises(ZondaConfigError) as caught:
        ensure_secret_key(load_settings(zonda_home))
    message = str(caught.value)
    assert why in message and "\n" not in message
    assert "[webserver] secret_key" in message and "secrets.token_urlsafe" in message


def test_a_weak_key_file_refuses_to_start(zonda_home: Path) -> None:
    path = zonda_home / FILE_NAME
    path.write_text("changeme\n")
    path.chmod(0o600)
    with pytest.raises(ZondaConfigError, match="well-known example"):
        ensure_secret_key(load_settings(zonda_home))


def test_a_key_file_others_can_read_refuses_to_start(zonda_home: Path) -> None:
    ensure_secret_key(load_settings(zonda_home))
    (zonda_home / FILE_NAME).chmod(0o644)
    with pytest.raises(ZondaConfigError, match="chmod 600"):
        ensure_secret_key(load_settings(zonda_home))


@SQLITE_ONLY
def test_create_app_refuses_a_known_key(web_settings, web_store) -> None:
    from zonda.web import create_app

    settings = web_settings.with_overrides({("webserver", "secret_key"): "changeme"})
    with pytest.raises(ZondaConfigError, match="well-known example"):
        create_app(settings, engine=web_store.engine)


def test_zonda_webserver_with_a_known_key_exits_with_one_line(zonda_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(ZONDA_HOME=str(zonda_home), ZONDA__WEBSERVER__SECRET_KEY="changeme", ZONDA__WEBSERVER__PORT="0")
    done = subprocess.run(
        [sys.executable, "-m", "zonda", "webserver"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the web server's secret key"), done.stderr
    assert "changeme" not in done.stdout
