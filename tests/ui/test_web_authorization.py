"""Every route declares its permission, and one table says what each role gets from each route.

The table is the contract: a route added without a row here fails :func:`test_every_route_is_in_the_table`, and
each row is checked for an anonymous visitor and for each role (a fresh login where the request ends the
session). "login" means a redirect to ``/login``.
"""

from __future__ import annotations

from typing import Any

import pytest
from dag_fixtures import store_dag, wide_dag
from flask import Blueprint

ACTORS = ("anonymous", "Viewer", "User", "Op", "Admin")
LOGIN = "login"


SQLITE_ONLY = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
"""For tests whose subject does not depend on the database: SQLite only (the others run on PostgreSQL too)."""


def everyone(status: int | str, anonymous: int | str | None = None) -> dict[str, int | str]:
    return {actor: (anonymous if actor == "anonymous" and anonymous is not None else status) for actor in ACTORS}


#: (method, rule) -> (path to request, form to send, whether it ends the session, expected status per actor)
TABLE: dict[tuple[str, str], tuple[str, dict[str, str], bool, dict[str, int | str]]] = {
    ("GET", "/static/<path:filename>"): ("/static/zonda.css", {}, False, everyone(200)),
    ("GET", "/health"): ("/health", {}, False, everyone(200)),
    ("GET", "/login"): ("/login", {}, False, everyone(302, anonymous=200)),
    ("POST", "/login"): ("/login", {"username": "viewer", "password": "PASSWORD"}, True, everyone(303)),
    ("POST", "/logout"): ("/logout", {}, True, everyone(303, anonymous=LOGIN)),
    ("GET", "/"): ("/", {}, False, everyone(302, anonymous=LOGIN)),
    ("GET", "/dags"): ("/dags", {}, False, everyone(200, anonymous=LOGIN)),
    ("POST", "/dags/<dag_id>/paused"): (
        "/dags/table_dag/paused",
        {"paused": "true"},
        False,
        {"anonymous": LOGIN, "Viewer": 403, "User": 303, "Op": 303, "Admin": 303},
    ),
    ("GET", "/dags/<dag_id>"): ("/dags/table_dag", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/dags/<dag_id>/grid.json"): ("/dags/table_dag/grid.json", {}, False, everyone(200, anonymous=401)),
    ("GET", "/dags/<dag_id>/graph"): ("/dags/table_dag/graph", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/dags/<dag_id>/graph.json"): ("/dags/table_dag/graph.json", {}, False, everyone(200, anonymous=401)),
    ("GET", "/dags/<dag_id>/code"): ("/dags/table_dag/code", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/dags/<dag_id>/details"): ("/dags/table_dag/details", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/import-errors"): ("/import-errors", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/plugin-errors"): ("/plugin-errors", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/api/v1/version"): ("/api/v1/version", {}, False, everyone(200, anonymous=401)),
}


def url_map_routes(app: Any) -> set[tuple[str, str]]:
    """(method, rule) for every route; HEAD and OPTIONS are answered by Flask for every GET route alike."""
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


@SQLITE_ONLY
def test_every_route_declares_a_permission(web) -> None:
    from zonda.web.access import routes_without_permission
    from zonda.web.permissions import declared_permission

    assert routes_without_permission(web.app) == []
    for rule in web.app.url_map.iter_rules():
        assert declared_permission(web.app.view_functions[rule.endpoint]) is not None, rule


@SQLITE_ONLY
def test_every_route_is_in_the_table(web) -> None:
    routes = url_map_routes(web.app)
    assert routes - TABLE.keys() == set(), "routes missing from the authorization table"
    assert TABLE.keys() - routes == set(), "rows of the table for routes that no longer exist"


def test_the_authorization_table(web) -> None:
    store_dag(web.store, wide_dag("table_dag", 2))
    clients = {role: web.logged_in(role) for role in ("Viewer", "User", "Op", "Admin")}
    clients["anonymous"] = web.client()
    seen: dict[tuple[str, str, str], int | str] = {}
    for (method, rule), (path, form, ends_session, _expected) in TABLE.items():
        for actor in ACTORS:
            if ends_session:
                client = web.client() if actor == "anonymous" else web.logged_in(actor)
            else:
                client = clients[actor]
            data = {k: (web.password if v == "PASSWORD" else v) for k, v in form.items()}
            if method == "POST":
                data["csrf_token"] = web.token(client)
            response = client.open(path, method=method, data=data if method == "POST" else None)
            got: int | str = response.status_code
            if got == 302 and response.headers["Location"].startswith("/login?next="):
                got = LOGIN
            seen[(method, rule, actor)] = got
    wrong = {
        key: (got, TABLE[(key[0], key[1])][3][key[2]])
        for key, got in seen.items()
        if got != TABLE[(key[0], key[1])][3][key[2]]
    }
    assert wrong == {}, "(method, rule, actor): (got, expected)"


@SQLITE_ONLY
def test_head_answers_as_get_does(web) -> None:
    anonymous = web.client()
    assert anonymous.head("/dags").status_code == 302
    assert anonymous.head("/health").status_code == 200
    assert web.logged_in("Viewer").head("/dags").status_code == 200


@SQLITE_ONLY
def test_a_route_without_a_declared_permission_is_refused(web) -> None:
    """Fail closed: a view that declares nothing is answered 500 for everyone, Admin included."""
    from zonda.web.access import routes_without_permission

    web.app.add_url_rule("/undeclared", "undeclared", lambda: "secret data")
    assert routes_without_permission(web.app) == ["undeclared /undeclared"]
    response = web.logged_in("Admin").get("/undeclared")
    assert response.status_code == 500
    assert "secret data" not in response.text


@SQLITE_ONLY
def test_create_app_refuses_a_blueprint_with_an_undeclared_route(
    web_settings, web_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zonda.exceptions import ZondaException
    from zonda.web import create_app
    from zonda.web.views import api_v1 as module

    sneaky = Blueprint("api_v1", module.__name__, url_prefix="/api/v1")
    sneaky.add_url_rule("/leak", "leak", lambda: "secret data")
    monkeypatch.setattr(module, "api_v1", sneaky)
    with pytest.raises(ZondaException, match=r"routes without a declared permission: api_v1\.leak /api/v1/leak"):
        create_app(web_settings, engine=web_store.engine)


def test_authorize_follows_the_role_ladder() -> None:
    from types import SimpleNamespace

    from zonda.web.permissions import ROLE_PERMISSIONS, Permission, authorize

    def can(role: str | None, permission: Permission) -> bool:
        return authorize(None if role is None else SimpleNamespace(role=role), permission)

    assert can(None, Permission.PUBLIC) and not can(None, Permission.AUTHENTICATED) and not can(None, Permission.READ)
    assert can("Viewer", Permission.READ) and not can("Viewer", Permission.PAUSE_DAGS)
    user_only = {
        Permission.PAUSE_DAGS,
        Permission.TRIGGER_DAG_RUNS,
        Permission.CLEAR_TASK_INSTANCES,
        Permission.MARK_STATES,
    }
    op_only = {
        Permission.MANAGE_CONNECTIONS,
        Permission.MANAGE_VARIABLES,
        Permission.MANAGE_POOLS,
        Permission.READ_CONFIG,
    }
    assert all(can("User", p) for p in user_only) and not any(can("User", p) for p in op_only)
    assert all(can("Op", p) for p in user_only | op_only) and not can("Op", Permission.MANAGE_USERS)
    assert all(can("Admin", p) for p in Permission)
    assert not can("Superuser", Permission.READ) and can("Superuser", Permission.AUTHENTICATED)
    assert ROLE_PERMISSIONS["Viewer"] < ROLE_PERMISSIONS["User"] < ROLE_PERMISSIONS["Op"] < ROLE_PERMISSIONS["Admin"]
