"""Every route declares its permission, and one table says what each role gets from each route.

The table is the contract: a route added without a row here fails :func:`test_every_route_is_in_the_table`, and
each row is checked for an anonymous visitor and for each role (a fresh login where the request ends the
session). "login" means a redirect to ``/login``.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_table import API_ROWS, store_api_fixtures
from dag_fixtures import store_dag, wide_dag
from flask import Blueprint
from web_marks import SQLITE_ONLY

ACTORS = ("anonymous", "Viewer", "User", "Op", "Admin")
LOGIN = "login"


def everyone(status: int | str, anonymous: int | str | None = None) -> dict[str, int | str]:
    return {actor: (anonymous if actor == "anonymous" and anonymous is not None else status) for actor in ACTORS}


def roles(allowed: int | str, *, first: str = "", then: int | str = 0, least: str = "User") -> dict[str, int | str]:
    """``allowed`` for ``least`` and the roles above it, 403 below, login for anonymous. ``first``/``then``: the
    row deletes something, so the first allowed role gets ``allowed`` and the roles after it get ``then``."""
    order = ["Viewer", "User", "Op", "Admin"]
    expected: dict[str, int | str] = {"anonymous": LOGIN}
    for role in order:
        if order.index(role) < order.index(least):
            expected[role] = 403
        elif first and order.index(role) > order.index(first):
            expected[role] = then
        else:
            expected[role] = allowed
    return expected


def _op(allowed: int | str, **kwargs: Any) -> dict[str, int | str]:
    return roles(allowed, least="Op", **kwargs)


_TRIGGER_FORM = {"param.target": "table"}
_USER_FORM = {"username": "table_new", "role": "Viewer", "password": "a long password"}
#: The admin pages (trigger, connections, variables, pools, providers, plugins, audit log, users); what they act
#: on is made by ``admin_helpers.store_admin_fixtures``.
ADMIN_ROWS: dict[tuple[str, str], tuple[str, dict[str, str], bool, dict[str, int | str]]] = {
    ("GET", "/dags/<dag_id>/trigger"): ("/dags/params_dag/trigger", {}, False, roles(200)),
    ("POST", "/dags/<dag_id>/trigger"): ("/dags/params_dag/trigger", _TRIGGER_FORM, False, roles(303)),
    ("GET", "/connections"): ("/connections", {}, False, _op(200)),
    ("GET", "/connections/new"): ("/connections/new", {}, False, _op(200)),
    ("POST", "/connections/new"): (
        "/connections/new",
        {"conn_id": "t_new", "conn_type": "generic"},
        False,
        _op(303, first="Op", then=400),
    ),
    ("GET", "/connections/<conn_id>/edit"): ("/connections/table_conn/edit", {}, False, _op(200)),
    ("POST", "/connections/<conn_id>/edit"): (
        "/connections/table_conn/edit",
        {"conn_type": "generic"},
        False,
        _op(303),
    ),
    ("POST", "/connections/<conn_id>/test"): ("/connections/table_conn/test", {}, False, _op(303)),
    ("POST", "/connections/<conn_id>/delete"): (
        "/connections/table_conn_del/delete",
        {},
        False,
        _op(303, first="Op", then=404),
    ),
    ("GET", "/variables"): ("/variables", {}, False, _op(200)),
    ("GET", "/variables/new"): ("/variables/new", {}, False, _op(200)),
    ("GET", "/variables/export"): ("/variables/export", {}, False, _op(200)),
    ("GET", "/variables/<key>/edit"): ("/variables/table_var/edit", {}, False, _op(200)),
    ("POST", "/variables"): ("/variables", {"key": "table_var", "value": "v2"}, False, _op(303)),
    ("POST", "/variables/<key>/delete"): ("/variables/table_var_del/delete", {}, False, _op(303, first="Op", then=404)),
    ("POST", "/variables/import"): ("/variables/import", {}, False, _op(303)),
    ("GET", "/pools"): ("/pools", {}, False, _op(200)),
    ("POST", "/pools"): ("/pools", {"name": "table_pool", "slots": "3"}, False, _op(303)),
    ("POST", "/pools/<name>/delete"): ("/pools/table_pool_del/delete", {}, False, _op(303, first="Op", then=404)),
    ("GET", "/providers"): ("/providers", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/plugins"): ("/plugins", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/audit-log"): ("/audit-log", {}, False, everyone(200, anonymous=LOGIN)),
    ("GET", "/users"): ("/users", {}, False, roles(200, least="Admin")),
    ("POST", "/users"): ("/users", _USER_FORM, False, roles(303, least="Admin")),
    ("POST", "/users/<username>/role"): ("/users/table_user/role", {"role": "User"}, False, roles(303, least="Admin")),
    ("POST", "/users/<username>/password"): (
        "/users/table_user/password",
        {"password": "another long one"},
        False,
        roles(303, least="Admin"),
    ),
    ("POST", "/users/<username>/delete"): ("/users/table_user_del/delete", {}, False, roles(303, least="Admin")),
}

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
    ("GET", "/api/v1/version"): ("/api/v1/version", {}, False, everyone(200, anonymous=401)),
    # The live stream, asked for too many DAGs: a 400 shows the request passed authorization without opening a
    # stream (tests/ui/test_web_live.py opens real ones).
    ("GET", "/events"): (
        "/events?" + "&".join(f"dag_id=d{i}" for i in range(101)),
        {},
        False,
        everyone(400, anonymous=LOGIN),
    ),
    ("GET", "/dags/recent-runs.json"): (
        "/dags/recent-runs.json?dag_id=table_dag",
        {},
        False,
        everyone(200, anonymous=401),
    ),
    # The run and task views on a DAG with no such run: the readers pass the check and get a 404.
    ("GET", "/dags/<dag_id>/runs/<run_id>"): ("/dags/table_dag/runs/r1", {}, False, everyone(404, anonymous=LOGIN)),
    ("GET", "/dags/<dag_id>/runs/<run_id>/gantt.json"): (
        "/dags/table_dag/runs/r1/gantt.json",
        {},
        False,
        everyone(404, anonymous=401),
    ),
    ("GET", "/dags/<dag_id>/runs/<run_id>/tasks/<task_id>"): (
        "/dags/table_dag/runs/r1/tasks/t1",
        {},
        False,
        everyone(404, anonymous=LOGIN),
    ),
    ("GET", "/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/logs/<int:try_number>"): (
        "/dags/table_dag/runs/r1/tasks/t1/logs/1",
        {},
        False,
        everyone(404, anonymous=LOGIN),
    ),
    ("GET", "/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/logs/<int:try_number>/download"): (
        "/dags/table_dag/runs/r1/tasks/t1/logs/1/download",
        {},
        False,
        everyone(404, anonymous=LOGIN),
    ),
    ("GET", "/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/logs/<int:try_number>/stream"): (
        "/dags/table_dag/runs/r1/tasks/t1/logs/1/stream",
        {},
        False,
        everyone(404, anonymous=LOGIN),
    ),
    ("POST", "/dags/<dag_id>/task_instances/clear"): (
        "/dags/table_dag/task_instances/clear",
        {},
        False,
        {"anonymous": LOGIN, "Viewer": 403, "User": 200, "Op": 200, "Admin": 200},
    ),
    ("POST", "/dags/<dag_id>/task_instances/mark"): (
        "/dags/table_dag/task_instances/mark",
        {"state": "success"},
        False,
        {"anonymous": LOGIN, "Viewer": 403, "User": 200, "Op": 200, "Admin": 200},
    ),
    **ADMIN_ROWS,
    **API_ROWS,
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


def _store_table_fixtures(web: Any) -> None:
    from admin_helpers import store_admin_fixtures

    store_dag(web.store, wide_dag("table_dag", 2))
    store_admin_fixtures(web)
    store_api_fixtures(web)


def _wrong_answers(seen: dict[tuple[str, str, str], int | str]) -> dict[tuple[str, str, str], tuple[Any, Any]]:
    """(method, rule, actor): (got, expected) for every answer the table did not expect."""
    return {
        key: (got, TABLE[(key[0], key[1])][3][key[2]])
        for key, got in seen.items()
        if got != TABLE[(key[0], key[1])][3][key[2]]
    }


def test_the_authorization_table(web) -> None:
    _store_table_fixtures(web)
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
            if path.startswith("/api/"):
                token = {"X-CSRF-Token": web.token(client)} if method != "GET" else {}
                response = client.open(path, method=method, json=data if data else None, headers=token)
            else:
                if method == "POST":
                    data["csrf_token"] = web.token(client)
                response = client.open(path, method=method, data=data if method == "POST" else None)
            got: int | str = response.status_code
            if got == 302 and response.headers["Location"].startswith("/login?next="):
                got = LOGIN
            seen[(method, rule, actor)] = got
    assert _wrong_answers(seen) == {}, "(method, rule, actor): (got, expected)"


def test_the_api_rows_answer_a_bearer_token_as_they_answer_the_session(web) -> None:
    """The same API rows, each role sending its API token instead of a session cookie, and no CSRF token on
    writes (a browser never adds an Authorization header by itself). Anonymous sends no header: 401."""
    from api_token_helpers import bearer, token_for

    _store_table_fixtures(web)
    # The test clock runs ahead of the date tokens are made on: give them a year.
    headers = {role: bearer(token_for(web, role, days=365)) for role in ("Viewer", "User", "Op", "Admin")}
    headers["anonymous"] = {}
    seen: dict[tuple[str, str, str], int | str] = {}
    for (method, rule), (path, form, _ends_session, _expected) in API_ROWS.items():
        for actor in ACTORS:
            client = web.client()
            response = client.open(path, method=method, json=form or None, headers=headers[actor])
            assert "Set-Cookie" not in response.headers, (method, rule, actor)
            seen[(method, rule, actor)] = response.status_code
    assert _wrong_answers(seen) == {}, "(method, rule, actor): (got, expected)"


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
