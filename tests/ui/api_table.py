"""The REST API's rows of the authorization table (tests/ui/test_web_authorization.py), and what they act on.

Bodies are sent as JSON with the session's CSRF token in ``X-CSRF-Token``. An anonymous request to the API is
answered 401 (not a redirect to the login page)."""

from __future__ import annotations

from typing import Any

Expected = dict[str, int | str]
ACTORS = ("anonymous", "Viewer", "User", "Op", "Admin")
_ORDER = ["Viewer", "User", "Op", "Admin"]


def readers(status: int = 200) -> Expected:
    return {actor: 401 if actor == "anonymous" else status for actor in ACTORS}


def api_roles(allowed: int, *, least: str = "User", first: str = "", then: int = 0) -> Expected:
    """``allowed`` from ``least`` up (403 below, 401 anonymous); ``first``/``then``: the first allowed role
    deletes or creates the thing, the roles after it get ``then``."""
    expected: Expected = {"anonymous": 401}
    for role in _ORDER:
        if _ORDER.index(role) < _ORDER.index(least):
            expected[role] = 403
        elif first and _ORDER.index(role) > _ORDER.index(first):
            expected[role] = then
        else:
            expected[role] = allowed
    return expected


V = "/api/v1"
_RUN = f"{V}/dags/params_dag/dagRuns/api_run"
_TI = f"{_RUN}/taskInstances/only"
_DRY = {"dry_run": True}
_NEW_USER = {"username": "api_user_new", "role": "Viewer", "password": "a long password"}

#: (method, rule) -> (path, JSON body, ends the session, expected status per actor)
API_ROWS: dict[tuple[str, str], tuple[str, dict[str, Any], bool, Expected]] = {
    ("GET", f"{V}/openapi.json"): (f"{V}/openapi.json", {}, False, {a: 200 for a in ACTORS}),
    ("GET", f"{V}/docs"): (f"{V}/docs", {}, False, {a: 200 for a in ACTORS}),
    ("GET", f"{V}/health"): (f"{V}/health", {}, False, {a: 200 for a in ACTORS}),
    ("GET", f"{V}/dags"): (f"{V}/dags", {}, False, readers()),
    ("GET", f"{V}/dags/<dag_id>"): (f"{V}/dags/table_dag", {}, False, readers()),
    ("PATCH", f"{V}/dags/<dag_id>"): (f"{V}/dags/table_dag", {"is_paused": True}, False, api_roles(200)),
    ("DELETE", f"{V}/dags/<dag_id>"): (f"{V}/dags/api_dag_del", {}, False, api_roles(204, first="User", then=404)),
    ("GET", f"{V}/dags/<dag_id>/dagRuns"): (f"{V}/dags/~/dagRuns", {}, False, readers()),
    ("POST", f"{V}/dags/<dag_id>/dagRuns"): (
        f"{V}/dags/params_dag/dagRuns",
        {"conf": {"target": "table"}},
        False,
        api_roles(200),
    ),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>"): (_RUN, {}, False, readers()),
    ("PATCH", f"{V}/dags/<dag_id>/dagRuns/<run_id>"): (_RUN, {"state": "failed"}, False, api_roles(200)),
    ("POST", f"{V}/dags/<dag_id>/dagRuns/<run_id>/clear"): (f"{_RUN}/clear", _DRY, False, api_roles(200)),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances"): (
        f"{V}/dags/~/dagRuns/~/taskInstances",
        {},
        False,
        readers(),
    ),
    # The run has no instances yet (no scheduler ran it): the readers pass the check and get a 404.
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>"): (_TI, {}, False, readers(404)),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/listMapped"): (
        f"{_TI}/listMapped",
        {},
        False,
        readers(),
    ),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/<int:map_index>"): (
        f"{_TI}/0",
        {},
        False,
        readers(404),
    ),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/logs/<int:try_number>"): (
        f"{_TI}/logs/1",
        {},
        False,
        readers(404),
    ),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/xcomEntries"): (
        f"{V}/dags/~/dagRuns/~/taskInstances/~/xcomEntries",
        {},
        False,
        readers(),
    ),
    ("GET", f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/xcomEntries/<xcom_key>"): (
        f"{_TI}/xcomEntries/k",
        {},
        False,
        readers(404),
    ),
    ("POST", f"{V}/dags/<dag_id>/clearTaskInstances"): (
        f"{V}/dags/params_dag/clearTaskInstances",
        _DRY,
        False,
        api_roles(200),
    ),
    ("POST", f"{V}/dags/<dag_id>/updateTaskInstancesState"): (
        f"{V}/dags/params_dag/updateTaskInstancesState",
        {**_DRY, "new_state": "success"},
        False,
        api_roles(200),
    ),
    ("GET", f"{V}/connections"): (f"{V}/connections", {}, False, api_roles(200, least="Op")),
    ("POST", f"{V}/connections"): (
        f"{V}/connections",
        {"connection_id": "api_conn_new", "conn_type": "generic"},
        False,
        api_roles(200, least="Op", first="Op", then=409),
    ),
    ("GET", f"{V}/connections/<connection_id>"): (f"{V}/connections/table_conn", {}, False, api_roles(200, least="Op")),
    ("PATCH", f"{V}/connections/<connection_id>"): (
        f"{V}/connections/table_conn",
        {"host": "example.invalid"},
        False,
        api_roles(200, least="Op"),
    ),
    ("DELETE", f"{V}/connections/<connection_id>"): (
        f"{V}/connections/api_conn_del",
        {},
        False,
        api_roles(204, least="Op", first="Op", then=404),
    ),
    ("GET", f"{V}/variables"): (f"{V}/variables", {}, False, api_roles(200, least="Op")),
    ("POST", f"{V}/variables"): (f"{V}/variables", {"key": "api_var", "value": "v"}, False, api_roles(200, least="Op")),
    ("GET", f"{V}/variables/<key>"): (f"{V}/variables/table_var", {}, False, api_roles(200, least="Op")),
    ("PATCH", f"{V}/variables/<key>"): (f"{V}/variables/table_var", {"value": "v2"}, False, api_roles(200, least="Op")),
    ("DELETE", f"{V}/variables/<key>"): (
        f"{V}/variables/api_var_del",
        {},
        False,
        api_roles(204, least="Op", first="Op", then=404),
    ),
    ("GET", f"{V}/pools"): (f"{V}/pools", {}, False, readers()),
    ("POST", f"{V}/pools"): (f"{V}/pools", {"name": "api_pool", "slots": 2}, False, api_roles(200, least="Op")),
    ("GET", f"{V}/pools/<pool_name>"): (f"{V}/pools/table_pool", {}, False, readers()),
    ("PATCH", f"{V}/pools/<pool_name>"): (f"{V}/pools/table_pool", {"slots": 3}, False, api_roles(200, least="Op")),
    ("DELETE", f"{V}/pools/<pool_name>"): (
        f"{V}/pools/api_pool_del",
        {},
        False,
        api_roles(204, least="Op", first="Op", then=404),
    ),
    ("GET", f"{V}/importErrors"): (f"{V}/importErrors", {}, False, readers()),
    ("GET", f"{V}/importErrors/<int:import_error_id>"): (f"{V}/importErrors/999", {}, False, readers(404)),
    ("GET", f"{V}/providers"): (f"{V}/providers", {}, False, readers()),
    ("GET", f"{V}/plugins"): (f"{V}/plugins", {}, False, readers()),
    ("GET", f"{V}/users"): (f"{V}/users", {}, False, api_roles(200, least="Admin")),
    ("POST", f"{V}/users"): (f"{V}/users", _NEW_USER, False, api_roles(200, least="Admin")),
    ("GET", f"{V}/users/<username>"): (f"{V}/users/table_user", {}, False, api_roles(200, least="Admin")),
    ("PATCH", f"{V}/users/<username>"): (
        f"{V}/users/table_user",
        {"role": "User"},
        False,
        api_roles(200, least="Admin"),
    ),
    ("DELETE", f"{V}/users/<username>"): (f"{V}/users/api_user_del", {}, False, api_roles(204, least="Admin")),
}


def store_api_fixtures(web: Any) -> None:
    """What the API rows act on beside the admin fixtures: a run of ``params_dag``, and a DAG, a connection, a
    variable, a pool and a user to delete."""
    from zonda.connection import Connection
    from zonda.metastore import tables as t
    from zonda.operations.connections import add_connection
    from zonda.operations.dag_runs import trigger
    from zonda.operations.pools import set_pool
    from zonda.operations.users import create_user
    from zonda.operations.variables import set_variable

    add_connection(web.store, web.settings, Connection(conn_id="api_conn_del", conn_type="generic"))
    set_variable(web.settings, "api_var_del", "value", metastore=web.store)
    set_pool(web.engine, "api_pool_del", 2)
    create_user(web.engine, "api_user_del", "Viewer", "a long password", actor="(test)")

    trigger(web.engine, "params_dag", conf={"target": "table"}, run_id="api_run")
    with web.engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id="api_dag_del", is_paused=False, is_active=True, fileloc="/x.py"))
