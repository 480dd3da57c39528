"""Every state change is a POST with the session's CSRF token; failed logins are limited per username and per
client address (through the test client; ``test_web_real_server.py`` repeats the key cases over HTTP)."""

from __future__ import annotations

from typing import Any

import pytest
from web_marks import SQLITE_ONLY

from zonda.metastore import tables as t
from zonda.operations.audit import list_entries
from zonda.operations.dags import is_paused


def _insert_dag(engine: Any, dag_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id=dag_id, is_paused=False, is_active=True, fileloc="/x.py"))


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("sent", "status"),
    [(None, 400), ("", 400), ("not-the-token", 403), ("header:not-the-token", 403)],
    ids=["missing", "empty", "wrong", "wrong-header"],
)
def test_a_post_without_the_right_csrf_token_changes_nothing(web, sent: str | None, status: int) -> None:
    _insert_dag(web.engine, "csrf_dag")
    client = web.logged_in("Admin")
    web.token(client)  # the session has a token; the request does not carry it
    data: dict[str, str] = {"paused": "true"}
    headers = {}
    if sent is not None and sent.startswith("header:"):
        headers["X-CSRF-Token"] = sent.removeprefix("header:")
    elif sent is not None:
        data["csrf_token"] = sent
    response = client.post("/dags/csrf_dag/paused", data=data, headers=headers)
    assert response.status_code == status
    assert is_paused(web.engine, "csrf_dag") is False
    assert list_entries(web.engine, action="dag.pause") == []


@SQLITE_ONLY
def test_a_token_from_another_session_is_refused(web) -> None:
    _insert_dag(web.engine, "csrf_dag")
    victim, attacker = web.logged_in("Admin"), web.logged_in("User")
    attackers_token = web.token(attacker)
    response = victim.post("/dags/csrf_dag/paused", data={"paused": "true", "csrf_token": attackers_token})
    assert response.status_code == 403
    assert is_paused(web.engine, "csrf_dag") is False


def test_the_right_token_changes_state_and_audits_it(web) -> None:
    _insert_dag(web.engine, "csrf_dag")
    client = web.logged_in("User")
    response = client.post("/dags/csrf_dag/paused", data={"paused": "true", "csrf_token": web.token(client)})
    assert response.status_code == 303
    assert is_paused(web.engine, "csrf_dag") is True
    client.post("/dags/csrf_dag/paused", headers={"X-CSRF-Token": web.token(client)}, data={"paused": "false"})
    assert is_paused(web.engine, "csrf_dag") is False
    entries = [(e.username, e.action, e.target) for e in list_entries(web.engine, limit=2)]
    assert entries == [("user", "dag.unpause", "csrf_dag"), ("user", "dag.pause", "csrf_dag")]


@SQLITE_ONLY
def test_get_never_changes_state(web) -> None:
    _insert_dag(web.engine, "csrf_dag")
    client = web.logged_in("Admin")
    assert client.get("/dags/csrf_dag/paused?paused=true").status_code == 405
    assert client.get("/logout").status_code == 405
    assert is_paused(web.engine, "csrf_dag") is False
    assert client.get("/dags").status_code == 200  # still logged in


@SQLITE_ONLY
def test_login_needs_the_csrf_token_too(web) -> None:
    client = web.client()
    client.get("/login")
    response = client.post("/login", data={"username": "viewer", "password": web.password})
    assert response.status_code == 400
    assert client.get("/dags").status_code == 302


def _fail(web: Any, client: Any, username: str, address: str = "10.0.0.1") -> Any:
    token = web.token(client)
    return client.post(
        "/login",
        data={"username": username, "password": "wrong password", "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


@SQLITE_ONLY
def test_five_failures_per_username_then_429_even_with_the_right_password(web) -> None:
    client = web.client()
    for i in range(5):
        assert _fail(web, client, "viewer", address=f"10.0.0.{i}").status_code == 401
    response = client.post(
        "/login",
        data={"username": "viewer", "password": web.password, "csrf_token": web.token(client)},
        environ_base={"REMOTE_ADDR": "10.0.0.99"},
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"
    assert client.get("/dags").status_code == 302  # not logged in
    assert web.login(web.client(), "user").status_code == 303  # other usernames are not affected
    assert list_entries(web.engine, action="login.refused")[0].target == "viewer"


@SQLITE_ONLY
def test_five_failures_per_address_then_429_for_any_username(web) -> None:
    client = web.client()
    for name in ["a", "b", "c", "d", "e"]:
        assert _fail(web, client, name, address="10.9.9.9").status_code == 401
    assert _fail(web, client, "f", address="10.9.9.9").status_code == 429
    assert _fail(web, client, "g", address="10.9.9.8").status_code == 401  # another address may still try


@SQLITE_ONLY
def test_the_limit_lifts_when_the_window_has_passed(web) -> None:
    client = web.client()
    for _ in range(5):
        _fail(web, client, "viewer")
    web.clock.advance(30)
    response = _fail(web, client, "viewer")
    assert response.status_code == 429 and response.headers["Retry-After"] == "30"
    web.clock.advance(30)
    assert web.login(client, "viewer").status_code == 303


@SQLITE_ONLY
def test_a_successful_login_clears_its_usernames_failures(web) -> None:
    client = web.client()
    for i in range(4):
        _fail(web, client, "viewer", address=f"10.1.0.{i}")
    assert web.login(web.client(), "viewer").status_code == 303
    for i in range(4):
        assert _fail(web, client, "viewer", address=f"10.2.0.{i}").status_code == 401


@SQLITE_ONLY
def test_the_limit_is_configurable(make_web_app) -> None:
    web = make_web_app({("webserver", "login_max_failures"): 2, ("webserver", "login_failure_window"): 10})
    client = web.client()
    assert _fail(web, client, "viewer").status_code == 401
    assert _fail(web, client, "viewer").status_code == 401
    response = _fail(web, client, "viewer")
    assert response.status_code == 429 and response.headers["Retry-After"] == "10"
