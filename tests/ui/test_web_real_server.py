"""The same promises over real HTTP: the app served by waitress on a free loopback port, driven with httpx, on
SQLite and PostgreSQL; and ``zonda webserver`` as a process that a signal stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from web_marks import SQLITE_ONLY

from zonda.metastore import tables as t
from zonda.operations.dags import is_paused

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: httpx.Client, path: str = "/login") -> str:
    found = CSRF_FIELD.search(client.get(path).text)
    assert found
    return found.group(1)


def login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(client)})


def test_health_login_cookies_csrf_and_logout_over_http(make_web_app, serve) -> None:
    web = make_web_app()
    with web.engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id="http_dag", is_paused=False, is_active=True, fileloc="/x.py"))
    server = serve(web.app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["metastore"] == {"status": "healthy"}
        assert health.headers["server"] == "zonda"  # waitress, not Flask's development server

        anonymous = client.get("/dags")
        assert anonymous.status_code == 302 and anonymous.headers["location"] == "/login?next=%2Fdags"
        assert client.get("/api/v1/version").status_code == 401

        response = login(client, "user", web.password)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        parts = [p.strip() for p in cookie.split(";")]
        assert parts[0].startswith("zonda_session=") and "HttpOnly" in parts and "SameSite=Lax" in parts
        assert "Secure" not in parts  # plain HTTP on loopback
        assert client.get("/dags").status_code == 200

        token = csrf(client, "/dags")
        assert client.post("/dags/http_dag/paused", data={"paused": "true"}).status_code == 400
        assert (
            client.post("/dags/http_dag/paused", data={"paused": "true", "csrf_token": "x" + token}).status_code == 403
        )
        assert is_paused(web.engine, "http_dag") is False
        assert client.post("/dags/http_dag/paused", data={"paused": "true", "csrf_token": token}).status_code == 303
        assert is_paused(web.engine, "http_dag") is True

        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        assert client.get("/dags").status_code == 302


@SQLITE_ONLY
def test_the_session_cookie_is_secure_with_cookie_secure(make_web_app, serve) -> None:
    """For TLS that ends at a proxy in front of Zonda: the cookie is Secure though this hop is plain HTTP (so a
    client talking plain HTTP to it never sends it back)."""
    web = make_web_app({("webserver", "cookie_secure"): True})
    server = serve(web.app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/login")
        assert "Secure" in [p.strip() for p in response.headers["set-cookie"].split(";")]


def test_an_idle_session_ends_over_http(make_web_app, serve) -> None:
    """The app's clock is the test's: the session ages without waiting, on the real server's threads too."""
    web = make_web_app({("webserver", "session_idle_timeout"): 60.0})
    server = serve(web.app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert login(client, "viewer", web.password).status_code == 303
        web.clock.advance(59)
        assert client.get("/dags").status_code == 200  # a request within the timeout keeps the session
        web.clock.advance(59)
        assert client.get("/dags").status_code == 200
        web.clock.advance(61)
        response = client.get("/dags")
        assert response.status_code == 302 and response.headers["location"].startswith("/login")


@SQLITE_ONLY
def test_the_login_rate_limit_over_http(make_web_app, serve) -> None:
    web = make_web_app()
    server = serve(web.app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(5):
            assert login(client, "viewer", "wrong password").status_code == 401
        response = login(client, "viewer", web.password)
        assert response.status_code == 429
        assert 1 <= int(response.headers["retry-after"]) <= 60


@SQLITE_ONLY
def test_the_server_stops_with_open_keep_alive_connections(make_web_app, serve) -> None:
    web = make_web_app(users=False)
    server = serve(web.app)
    client = httpx.Client(base_url=server.url, timeout=10)  # keeps its connection open
    assert client.get("/health").status_code == 200
    server.close()  # asserts the thread ended within its bound
    with pytest.raises(httpx.TransportError):
        client.get("/health")
    client.close()


@SQLITE_ONLY
def test_a_port_in_use_is_a_one_line_error(make_web_app) -> None:
    from zonda.exceptions import ZondaException
    from zonda.web.server import WebServer

    web = make_web_app(users=False)
    first = WebServer(web.app, "127.0.0.1", 0)
    port = first.address[1]
    try:
        with pytest.raises(ZondaException, match=rf"cannot listen on 127\.0\.0\.1:{port} \(the address is in use\); "):
            WebServer(web.app, "127.0.0.1", port)
    finally:
        import threading

        stop = threading.Event()
        stop.set()
        first.serve(stop)  # closes its socket at once


def test_zonda_webserver_serves_until_sigterm(zonda_home: Path, web_store) -> None:
    from zonda.operations.users import create_user

    create_user(web_store.engine, "ops", "Op", "long-enough-password")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(
        ZONDA_HOME=str(zonda_home),
        ZONDA__DATABASE__SQL_ALCHEMY_CONN=web_store.url,
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "zonda", "webserver", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Zonda web server: " not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        found = re.search(r"Zonda web server: (http://127\.0\.0\.1:\d+)", line)
        assert found, line
        with httpx.Client(base_url=found.group(1), timeout=10) as client:
            assert client.get("/health").json()["metastore"] == {"status": "healthy"}
            assert login(client, "ops", "long-enough-password").status_code == 303
            assert client.get("/dags").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "Zonda web server stopped." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert (zonda_home / "webserver_secret_key").exists()


def _webserver_env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(ZONDA_HOME=str(home), ZONDA__DATABASE__SQL_ALCHEMY_CONN=url, PYTHONUNBUFFERED="1")
    return env


@pytest.mark.postgres
def test_zonda_webserver_on_an_empty_database_says_to_initialise_it(zonda_home: Path, postgres_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zonda", "webserver", "--port", "0"],
        env=_webserver_env(zonda_home, postgres_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "zonda db init" in lines[0], done.stderr


def test_zonda_webserver_without_users_says_how_to_make_one(zonda_home: Path, sqlite_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zonda", "webserver", "--port", "0"],
        env=_webserver_env(zonda_home, sqlite_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].startswith("No users yet: nobody can log in. Make one with: zonda users create"), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
