"""The REST API's behaviour over a metastore with history: paging (keyset pages are stable and complete, offset
and counts), filters, errors as JSON with the right status (never a 500 for bad input), ETag and 304, secrets
never in an answer, changes audited, and at most 3 SQL statements per request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from api_seed import RUNS, SECRET, seed_api_history
from web_marks import SQLITE_ONLY

V = "/api/v1"


@pytest.fixture
def seeded(web: Any) -> Any:
    seed_api_history(web)
    return web


def _csrf(web: Any, client: Any) -> dict[str, str]:
    return {"X-CSRF-Token": web.token(client)}


@pytest.mark.database_dependent
def test_keyset_pages_cover_every_row_once_in_order(seeded: Any) -> None:
    client = seeded.logged_in("Viewer")
    seen: list[tuple[str, str, int]] = []
    cursor = None
    for _ in range(50):
        query = {"limit": 4, "order_by": "-start_date", **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{V}/dags/api_dag/dagRuns/~/taskInstances", query_string=query)
        assert page.status_code == 200, page.text
        body = page.json
        assert body["total_entries"] == RUNS * 5
        seen += [(ti["dag_run_id"], ti["task_id"], ti["map_index"]) for ti in body["task_instances"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == RUNS * 5 and len(set(seen)) == RUNS * 5
    run_order = [run for run, _, _ in seen]
    assert run_order == sorted(run_order, key=lambda r: -int(r.split("__")[1]))


@pytest.mark.database_dependent
@pytest.mark.parametrize("order", ["start_date", "-start_date", "duration", "-end_date"])
def test_keyset_pages_over_a_nullable_column_with_nulls_cover_every_row_once(seeded: Any, order: str) -> None:
    """NULLs sort where the database puts them (so an index serves the order); a cursor that lands on a NULL
    still leads to every remaining row exactly once, in either direction."""
    from sqlalchemy import update

    from zonda.metastore import tables as t

    ti = t.task_instance
    with seeded.engine.begin() as conn:  # a mapped task's instances have not started: no dates, no duration
        conn.execute(update(ti).where(ti.c.task_id == "m").values(start_date=None, end_date=None, duration=None))
    client = seeded.logged_in("Viewer")
    seen: list[tuple[str, str, int]] = []
    values: list[Any] = []
    cursor = None
    for _ in range(50):
        query = {"limit": 4, "order_by": order, "count": "none", **({"cursor": cursor} if cursor else {})}
        body = client.get(f"{V}/dags/api_dag/dagRuns/~/taskInstances", query_string=query).json
        seen += [(ti["dag_run_id"], ti["task_id"], ti["map_index"]) for ti in body["task_instances"]]
        values += [ti[order.lstrip("-")] for ti in body["task_instances"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == RUNS * 5 and len(set(seen)) == RUNS * 5
    nulls = [i for i, value in enumerate(values) if value is None]
    assert len(nulls) == RUNS * 3
    assert nulls in (list(range(RUNS * 3)), list(range(RUNS * 2, RUNS * 5)))  # all together, at one end
    present = [value for value in values if value is not None]
    assert present == sorted(present, reverse=order.startswith("-"))


@pytest.mark.database_dependent
def test_offset_count_modes_and_filters(seeded: Any) -> None:
    client = seeded.logged_in("Viewer")
    base = f"{V}/dags/~/dagRuns"
    assert client.get(base, query_string={"limit": 2, "offset": 2}).json["dag_runs"][0]["dag_run_id"] == "scheduled__2"
    assert client.get(base, query_string={"limit": 2, "count": "none"}).json["total_entries"] is None
    assert client.get(base, query_string={"limit": 2, "count": "estimate"}).json["total_entries"] >= 1
    failed = client.get(base, query_string={"state": "failed"}).json
    assert failed["total_entries"] == (RUNS + 1) // 2
    window = client.get(
        base, query_string={"logical_date_gte": "2026-01-02T00:00:00Z", "logical_date_lte": "2026-01-03T00:00:00Z"}
    ).json
    assert [r["dag_run_id"] for r in window["dag_runs"]] == ["scheduled__1", "scheduled__2"]
    assert client.get(base, query_string={"run_id_pattern": "%\\_1"}).json["total_entries"] == 1
    mapped = client.get(f"{V}/dags/api_dag/dagRuns/scheduled__0/taskInstances/m/listMapped").json
    assert [ti["map_index"] for ti in mapped["task_instances"]] == [0, 1, 2]
    one = client.get(f"{V}/dags/api_dag/dagRuns/scheduled__0/taskInstances/m/2").json
    assert one["map_index"] == 2 and one["task_id"] == "m"
    tagged = client.get(f"{V}/dags", query_string={"tags": "team_a"}).json
    assert [d["dag_id"] for d in tagged["dags"]] == ["api_dag"]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        (f"{V}/dags?limit=0", 400, "limit"),
        (f"{V}/dags?limit=abc", 400, "limit"),
        (f"{V}/dags?order_by=password", 400, "order_by"),
        (f"{V}/dags?cursor=forged", 400, "cursor"),
        (f"{V}/dags?unknown=1", 400, "unknown"),
        (f"{V}/dags?dag_id_pattern=a%5C", 400, "backslash"),
        (f"{V}/dags/~/dagRuns?state=exploded", 400, "state"),
        (f"{V}/dags/~/dagRuns?logical_date_gte=2026-01-01T00:00:00", 400, "timezone"),
        (f"{V}/dags/nope", 404, "nope"),
        (f"{V}/dags/nope/dagRuns", 404, "nope"),
        (f"{V}/no/such/route", 404, "not found"),
        (f"{V}/importErrors/abc", 404, "not found"),
    ],
)
def test_bad_input_is_a_json_error_never_a_500(seeded: Any, path: str, status: int, words: str) -> None:
    response = seeded.logged_in("Viewer").get(path)
    assert response.status_code == status, response.text
    body = response.json
    assert set(body) == {"title", "detail", "status"} and body["status"] == status
    assert words.lower() in body["detail"].lower()


@SQLITE_ONLY
def test_bad_bodies_and_methods(seeded: Any) -> None:
    client = seeded.logged_in("Admin")
    headers = _csrf(seeded, client)
    not_json = client.post(f"{V}/pools", data="slots=3", headers=headers, content_type="text/plain")
    assert not_json.status_code == 400 and "JSON" in not_json.json["detail"]
    invalid = client.post(f"{V}/pools", json={"name": "p", "slots": -1}, headers=headers)
    assert invalid.status_code == 422 and "slots" in invalid.json["detail"]
    conf = client.post(f"{V}/dags/api_dag/dagRuns", json={"conf": [1]}, headers=headers)
    assert conf.status_code == 422
    clash = client.post(f"{V}/dags/api_dag/dagRuns", json={"dag_run_id": "scheduled__1"}, headers=headers)
    assert clash.status_code == 409, clash.text
    wrong_method = client.put(f"{V}/dags", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.json["status"] == 405
    assert "GET" in wrong_method.headers["Allow"]
    no_csrf = client.patch(f"{V}/dags/api_dag", json={"is_paused": True})
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.json["detail"]
    assert client.get(f"{V}/dags/api_dag").json["is_paused"] is False


@SQLITE_ONLY
def test_conditional_get_answers_304_until_something_changes(seeded: Any) -> None:
    client = seeded.logged_in("User")
    first = client.get(f"{V}/dags/api_dag")
    etag = first.headers["ETag"]
    again = client.get(f"{V}/dags/api_dag", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    patched = client.patch(f"{V}/dags/api_dag", json={"is_paused": True}, headers=_csrf(seeded, client))
    assert patched.status_code == 200 and patched.json["is_paused"] is True
    changed = client.get(f"{V}/dags/api_dag", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_secrets_never_appear_in_answers(seeded: Any) -> None:
    client = seeded.logged_in("Admin")
    answers = [
        client.get(f"{V}/connections"),
        client.get(f"{V}/connections/api_conn"),
        client.get(f"{V}/variables"),
        client.get(f"{V}/variables/db_password"),
        client.get(f"{V}/dags/api_dag/dagRuns/scheduled__0/taskInstances/a/xcomEntries/api_token"),
        client.patch(f"{V}/connections/api_conn", json={"host": "h"}, headers=_csrf(seeded, client)),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert SECRET not in answer.text
    conn = client.get(f"{V}/connections/api_conn").json
    assert conn["has_password"] is True and "password" not in conn and conn["host"] == "h"
    assert conn["extra"]["api_key"] == "***" and conn["extra"]["x"] == 1
    # The PATCH that left the password out kept it (write-only, not wiped).
    from zonda.operations.connection_forms import _stored

    assert _stored(seeded.store, seeded.settings, "api_conn").password == SECRET


@pytest.mark.database_dependent
def test_changes_are_audited_and_dry_runs_change_nothing(seeded: Any) -> None:
    from sqlalchemy import select

    from zonda.metastore import tables as t

    client = seeded.logged_in("User")
    headers = _csrf(seeded, client)
    body = {"task_ids": ["b"], "only_failed": True}
    preview = client.post(f"{V}/dags/api_dag/clearTaskInstances", json=body, headers=headers).json
    assert preview["dry_run"] is True and {ti["task_id"] for ti in preview["task_instances"]} == {"b"}
    failed = client.get(f"{V}/dags/api_dag/dagRuns/~/taskInstances", query_string={"state": "failed"}).json
    assert failed["total_entries"] == len(preview["task_instances"])
    done = client.post(f"{V}/dags/api_dag/clearTaskInstances", json={**body, "dry_run": False}, headers=headers).json
    assert done["changed"] == len(preview["task_instances"])
    assert (
        client.get(f"{V}/dags/api_dag/dagRuns/~/taskInstances", query_string={"state": "failed"}).json["total_entries"]
        == 0
    )
    run = client.post(f"{V}/dags/api_dag/dagRuns", json={"dag_run_id": "api_triggered"}, headers=headers)
    assert run.status_code == 200 and run.json["state"] == "queued"
    with seeded.engine.connect() as conn:
        actions = {row.action for row in conn.execute(select(t.audit_log.c.action))}
    assert "task_instances.clear" in actions and "dag_run.trigger" in actions


@contextmanager
def counting(engine: Any) -> Iterator[list[str]]:
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _get_routes(app: Any) -> list[str]:
    return sorted(
        rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith(V) and "GET" in (rule.methods or ())
    )


#: A concrete path for each GET route of the API, on the seeded metastore.
_R = f"{V}/dags/api_dag/dagRuns/scheduled__0"
GET_PATHS = {
    f"{V}/openapi.json": f"{V}/openapi.json",
    f"{V}/docs": f"{V}/docs",
    f"{V}/health": f"{V}/health",
    f"{V}/version": f"{V}/version",
    f"{V}/dags": f"{V}/dags?limit=1",
    f"{V}/dags/<dag_id>": f"{V}/dags/api_dag",
    f"{V}/dags/<dag_id>/dagRuns": f"{V}/dags/~/dagRuns?limit=2&state=success",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>": _R,
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances": f"{V}/dags/api_dag/dagRuns/~/taskInstances?limit=3",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>": f"{_R}/taskInstances/a",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/listMapped": f"{_R}/taskInstances/m/listMapped?limit=2",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/<int:map_index>": f"{_R}/taskInstances/m/1",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/logs/<int:try_number>": f"{_R}/taskInstances/a/logs/1",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/xcomEntries": f"{_R}/taskInstances/a/xcomEntries?limit=1",
    f"{V}/dags/<dag_id>/dagRuns/<run_id>/taskInstances/<task_id>/xcomEntries/<xcom_key>": (
        f"{_R}/taskInstances/a/xcomEntries/return_value"
    ),
    f"{V}/connections": f"{V}/connections?limit=1",
    f"{V}/connections/<connection_id>": f"{V}/connections/api_conn",
    f"{V}/variables": f"{V}/variables",
    f"{V}/variables/<key>": f"{V}/variables/db_password",
    f"{V}/pools": f"{V}/pools",
    f"{V}/pools/<pool_name>": f"{V}/pools/default_pool",
    f"{V}/importErrors": f"{V}/importErrors",
    f"{V}/importErrors/<int:import_error_id>": f"{V}/importErrors/1",
    f"{V}/providers": f"{V}/providers",
    f"{V}/plugins": f"{V}/plugins",
    f"{V}/users": f"{V}/users?limit=2",
    f"{V}/users/<username>": f"{V}/users/viewer",
}


@pytest.mark.database_dependent
@pytest.mark.parametrize("caller", ["session", "token", "granted session", "granted token"])
def test_no_get_route_runs_more_than_three_statements(seeded: Any, caller: str) -> None:
    """Also with a Bearer token, and for a user narrowed by a per-DAG grant (whose grants join the listings'
    statements; the grant check of a route naming a DAG is the one statement such a user pays more)."""
    from api_token_helpers import bearer, token_for

    from zonda.operations.dag_grants import add_grant

    assert sorted(GET_PATHS) == _get_routes(seeded.app), "a GET route of the API has no path in GET_PATHS"
    granted = caller.startswith("granted")
    if granted:
        add_grant(seeded.engine, seeded.users["Admin"], "glob", "api_*", actor="(test)")
    if caller.endswith("token"):
        headers = bearer(token_for(seeded, "Admin", days=365))  # the test clock runs ahead of today
        client = seeded.client()
    else:
        headers, client = {}, seeded.logged_in("Admin")
    over = {}
    for rule, path in GET_PATHS.items():
        names_a_dag = "<dag_id>" in rule and path.split("/")[4] != "~"
        budget = 4 if granted and names_a_dag else 3
        with counting(seeded.engine) as statements:
            response = client.get(path, headers=headers)
        assert response.status_code in (200, 404), (path, response.status_code, response.text[:200])
        if len(statements) > budget:
            over[rule] = statements
    assert over == {}, json.dumps(over, indent=1)[:3000]


@pytest.mark.database_dependent
def test_writes_stay_within_a_few_statements(seeded: Any) -> None:
    """Triggering and setting a run's state: no statement per row (the budget of a write is larger than a read's:
    the user, the operation's reads and writes, the audit entry)."""
    client = seeded.logged_in("User")
    headers = _csrf(seeded, client)
    with counting(seeded.engine) as statements:
        response = client.patch(f"{V}/dags/api_dag", json={"is_paused": True}, headers=headers)
    assert response.status_code == 200 and len(statements) <= 5, statements


@pytest.mark.database_dependent
def test_deleting_a_dag_answers_204_as_airflow_with_the_counts_in_headers(seeded: Any) -> None:
    client = seeded.logged_in("User")
    response = client.delete(f"{V}/dags/api_dag", headers=_csrf(seeded, client))
    assert response.status_code == 204 and response.data == b""
    assert int(response.headers["X-Deleted-Dag-Runs"]) == RUNS
    assert int(response.headers["X-Deleted-Task-Instances"]) == RUNS * 5
    runs = client.get(f"{V}/dags/~/dagRuns").json["dag_runs"]
    assert [run for run in runs if run["dag_id"] == "api_dag"] == []
    documented = client.get(f"{V}/openapi.json").json["paths"]["/api/v1/dags/{dag_id}"]["delete"]["responses"]
    assert set(documented["204"]["headers"]) == {"X-Deleted-Dag-Runs", "X-Deleted-Task-Instances"}


def test_a_log_page_carries_airflows_content_and_continuation_token(seeded: Any) -> None:
    from zonda.runner.logs import attempt_log_path

    path = attempt_log_path(seeded.settings.log_folder, "api_dag", "scheduled__0", "a", -1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"line {n}\n" for n in range(5)), encoding="utf-8")
    client = seeded.logged_in("Viewer")
    url = f"{V}/dags/api_dag/dagRuns/scheduled__0/taskInstances/a/logs/1"
    first = client.get(url, query_string={"start": 0, "count": 3}).json
    assert first["lines"] == ["line 0", "line 1", "line 2"]
    assert first["content"] == "line 0\nline 1\nline 2" and first["continuation_token"] == "3"
    rest = client.get(url, query_string={"token": first["continuation_token"]}).json
    assert rest["content"] == "line 3\nline 4" and rest["continuation_token"] == "5"
    with path.open("a", encoding="utf-8") as log:
        log.write("line 5\n")
    assert client.get(url, query_string={"token": "5"}).json["content"] == "line 5"
    refused = client.get(url, query_string={"token": "five"})
    assert refused.status_code == 400 and "token" in refused.json["detail"]
