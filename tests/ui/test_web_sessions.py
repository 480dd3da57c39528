"""Logging in and out, the session cookie's flags, and the idle and absolute timeouts (through the test client,
with a clock the test moves; ``test_web_real_server.py`` does the same over HTTP)."""

from __future__ import annotations

from typing import Any

import pytest
from web_marks import SQLITE_ONLY

from zonda.operations.audit import list_entries


def session_cookie_header(response: Any) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("zonda_session=")]
    assert headers, f"no session cookie set by {response.status_code} {response.request.path}"
    return headers[-1]


def test_login_opens_the_pages_and_logout_closes_them(web) -> None:
    client = web.client()
    assert client.get("/dags").status_code == 302
    response = web.login(client, "viewer", next_="/dags")
    assert response.status_code == 303 and response.headers["Location"] == "/dags"
    page = client.get("/dags")
    assert page.status_code == 200 and "viewer (Viewer)" in page.text
    response = client.post("/logout", data={"csrf_token": web.token(client)})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert client.get("/dags").status_code == 302
    actions = [(e.action, e.username, e.target) for e in list_entries(web.engine, limit=10)]
    assert ("login.success", "viewer", "viewer") in actions and ("logout", "viewer", "viewer") in actions


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("username", "password"), [("viewer", "wrong password"), ("nobody", "correct horse battery staple"), ("viewer", "")]
)
def test_a_wrong_login_is_refused_and_audited(web, username: str, password: str) -> None:
    client = web.client()
    response = web.login(client, username, password)
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert client.get("/dags").status_code == 302
    failures = [e for e in list_entries(web.engine, action="login.failure")]
    assert [e.username for e in failures] == [None] and failures[0].target == (username or None)
    assert password not in str(failures[0].details) or not password


@SQLITE_ONLY
def test_login_only_redirects_within_the_site(web) -> None:
    for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]:
        response = web.login(web.client(), "viewer", next_=target)
        assert response.headers["Location"] == "/dags", target
    response = web.login(web.client(), "viewer", next_="/dags?x=1")
    assert response.headers["Location"] == "/dags?x=1"


@SQLITE_ONLY
def test_anonymous_page_requests_go_to_login_with_the_page_to_return_to(web) -> None:
    response = web.client().get("/dags?tag=a")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fdags%3Ftag%3Da"


@SQLITE_ONLY
def test_anonymous_api_requests_get_json_401(web) -> None:
    response = web.client().get("/api/v1/version")
    assert response.status_code == 401
    assert response.json == {"title": "Unauthorized", "detail": response.json["detail"], "status": 401}


@SQLITE_ONLY
def test_login_starts_a_new_session(web) -> None:
    """No fixation: the session a visitor had before logging in is not the one they have after."""
    client = web.client()
    before = web.token(client)
    web.login(client, "viewer")
    assert web.token(client) != before


def test_the_session_cookie_is_httponly_samesite_lax_and_not_secure_over_plain_http(web) -> None:
    response = web.login(web.client(), "viewer")
    header = session_cookie_header(response)
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Secure" not in [part.strip() for part in header.split(";")]


@SQLITE_ONLY
def test_the_session_cookie_is_secure_over_tls(web) -> None:
    client = web.client()
    token = web.token(client)
    response = client.post(
        "/login",
        data={"username": "viewer", "password": web.password, "csrf_token": token},
        base_url="https://localhost",
    )
    assert response.status_code == 303
    parts = [p.strip() for p in session_cookie_header(response).split(";")]
    assert "Secure" in parts and "HttpOnly" in parts and "SameSite=Lax" in parts


@SQLITE_ONLY
def test_cookie_secure_makes_it_secure_over_plain_http(make_web_app) -> None:
    web = make_web_app({("webserver", "cookie_secure"): True})
    response = web.login(web.client(), "viewer")
    assert "Secure" in [p.strip() for p in session_cookie_header(response).split(";")]


def test_an_idle_session_ends(make_web_app) -> None:
    web = make_web_app({("webserver", "session_idle_timeout"): 60})
    client = web.logged_in("Viewer")
    web.clock.advance(59)
    assert client.get("/dags").status_code == 200  # activity resets the idle time
    web.clock.advance(59)
    assert client.get("/dags").status_code == 200
    web.clock.advance(61)
    response = client.get("/dags")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "without activity" in client.get("/login").text
    web.clock.advance(1)
    assert client.get("/dags").status_code == 302  # ended for good, not just once


def test_an_active_session_ends_at_its_maximum_age(make_web_app) -> None:
    web = make_web_app({("webserver", "session_idle_timeout"): 60, ("webserver", "session_max_age"): 200})
    client = web.logged_in("Viewer")
    for _ in range(3):
        web.clock.advance(50)
        assert client.get("/dags").status_code == 200
    web.clock.advance(51)  # 201 s after login, 51 s after the last request
    assert client.get("/dags").status_code == 302


@SQLITE_ONLY
def test_the_default_timeouts_are_30_minutes_idle_and_12_hours_in_all(make_web_app) -> None:
    web = make_web_app()
    client = web.logged_in("Viewer")
    for _ in range(24):
        web.clock.advance(29 * 60)
        assert client.get("/dags").status_code == 200
    web.clock.advance(29 * 60)  # 12 h 6 min after login
    assert client.get("/dags").status_code == 302


def test_a_password_change_or_deletion_ends_the_users_sessions(web) -> None:
    from zonda.operations.users import delete_user, set_password

    client = web.logged_in("User")
    set_password(web.engine, "user", "a brand new password")
    assert client.get("/dags").status_code == 302
    other = web.logged_in("Op")
    delete_user(web.engine, "op")
    assert other.get("/dags").status_code == 302


@SQLITE_ONLY
def test_a_role_change_applies_to_the_open_session(web) -> None:
    from zonda.operations.users import set_role

    client = web.logged_in("User")
    token = web.token(client)
    set_role(web.engine, "user", "Viewer")
    response = client.post("/dags/x/paused", data={"paused": "true", "csrf_token": token})
    assert response.status_code == 403


@SQLITE_ONLY
def test_a_forged_session_cookie_is_ignored(web) -> None:
    from flask.sessions import SecureCookieSessionInterface

    other = web.app.__class__("other")
    other.secret_key = "someone else's key of plenty of characters"
    forged = (
        SecureCookieSessionInterface()
        .get_signing_serializer(other)
        .dumps({"uid": 1, "cv": "x", "login_at": web.clock.now, "seen_at": web.clock.now})
    )
    client = web.client()
    client.set_cookie("zonda_session", forged)
    assert client.get("/dags").status_code == 302


@SQLITE_ONLY
def test_pages_carry_security_headers(web) -> None:
    response = web.client().get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
