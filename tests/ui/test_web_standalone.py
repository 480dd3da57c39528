"""``zonda standalone`` includes the web server: the ``admin`` user is made on first start, its password printed
once and written to ``$ZONDA_HOME/standalone_admin_password.txt`` (mode 0600 whatever the umask)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import httpx
from standalone_process import read_banner, start_standalone, stop_standalone

from zonda.web.standalone_admin import FILE_NAME, ensure_standalone_admin

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_the_admin_is_made_once_with_a_private_password_file(metastore, zonda_home: Path) -> None:
    from zonda.operations.users import get_user, verify_password

    old = os.umask(0)
    try:
        first = ensure_standalone_admin(metastore.engine, zonda_home)
    finally:
        os.umask(old)
    path = zonda_home / FILE_NAME
    assert first.new_password and first.password_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.new_password
    assert get_user(metastore.engine, "admin").role == "Admin"
    assert verify_password(metastore.engine, "admin", first.new_password) is not None
    assert first.new_password in first.banner_line()

    again = ensure_standalone_admin(metastore.engine, zonda_home)
    assert again.new_password is None and again.password_file == path
    assert first.new_password not in again.banner_line() and str(path) in again.banner_line()

    path.unlink()
    gone = ensure_standalone_admin(metastore.engine, zonda_home)
    assert gone.password_file is None and "zonda users list" in gone.banner_line()
    assert not path.exists()  # an existing admin never gets a new, unrelated password file


def test_standalone_serves_the_ui_and_prints_the_password_only_the_first_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first_out = tmp_path / "first.out"
    proc = start_standalone(home, first_out)
    try:
        banner = read_banner(proc, first_out)
        url, password = banner.url, banner.password
        assert url and password, banner.text
        assert password.group(2) == str(home / FILE_NAME)
        assert (home / FILE_NAME).read_text().strip() == password.group(1)
        assert stat.S_IMODE((home / FILE_NAME).stat().st_mode) == 0o600
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/health").json()["scheduler"]["status"] == "healthy"
            token = CSRF_FIELD.search(client.get("/login").text).group(1)
            form = {"username": "admin", "password": password.group(1), "csrf_token": token}
            assert client.post("/login", data=form).status_code == 303
            assert client.get("/dags").status_code == 200
    finally:
        stop_standalone(proc, first_out)

    second_out = tmp_path / "second.out"
    proc = start_standalone(home, second_out)
    try:
        text = read_banner(proc, second_out).text
        assert f"log in as admin; its password is in {home / FILE_NAME}" in text, text
        assert password.group(1) not in text
    finally:
        stop_standalone(proc, second_out)
