"""A user narrowed by a per-DAG grant never sees another DAG's data, anywhere: every GET route of the UI and the API
is requested with such a user (paths naming the granted DAG, and ``~`` for every DAG where the API takes it), and
the hidden DAG's id appears in no answer. Its runs, task instances, XComs, audit entries and import error are in
the metastore, so any listing that forgot the grants would show it. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from api_token_helpers import bearer, token_for
from dag_fixtures import add_runs, store_dag, wide_dag
from sqlalchemy import insert, select

from zonda.metastore import tables as t
from zonda.operations.audit import record
from zonda.operations.dag_grants import add_grant, visible_dag_ids
from zonda.operations.users import find_user_by_id, get_user

SEEN, HIDDEN = "seen_dag", "hidden_zq"
TASKS = ("task_0000", "task_0001")
#: Streams that stay open (tested in test_web_live.py and the log tests) and files that name no DAG.
SKIPPED = re.compile(r"/stream$|^/events$|^/static/")
_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


@pytest.fixture
def two_dags(web) -> dict[str, Any]:
    """Both DAGs with runs, instances, XComs, an audit entry and an import error each; Admin granted ``seen_*``."""
    runs = {}
    for dag_id in (SEEN, HIDDEN):
        store_dag(web.store, wide_dag(dag_id, len(TASKS), tags=[f"tag_of_{dag_id}"]))
        runs[dag_id] = add_runs(web.engine, dag_id, 2, task_ids=TASKS)
        record(web.engine, "someone", "dag.pause", dag_id)
    now = datetime(2025, 2, 1, tzinfo=UTC)
    with web.engine.begin() as conn:
        for row in conn.execute(select(t.dag_run.c.id, t.dag_run.c.dag_id, t.dag_run.c.run_id)).all():
            conn.execute(
                insert(t.xcom).values(
                    dag_run_id=row.id, dag_id=row.dag_id, run_id=row.run_id, task_id=TASKS[0], key="k", value='"v"'
                )
            )
        for dag_id in (SEEN, HIDDEN):
            # Both DAGs are built in dag_fixtures.py; each gets a file of its own, as DAG files would.
            fileloc = f"dags/{dag_id}.py"
            conn.execute(t.dag.update().where(t.dag.c.dag_id == dag_id).values(fileloc=fileloc))
            conn.execute(
                insert(t.import_error).values(
                    filename=fileloc,
                    filename_hash=t.filename_hash(fileloc),
                    stacktrace=f"error in {dag_id}",
                    timestamp=now,
                )
            )
    add_grant(web.engine, web.users["Admin"], "glob", "seen_*", actor="(test)")
    return {"runs": runs}


def _get_rules(app: Any) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and not SKIPPED.search(rule.rule)
    )


def _paths(rule: str, run_id: str, import_error_id: int) -> list[str]:
    """``rule`` with the granted DAG's values, plus (API only) every mix with ``~`` for the DAG, run and task."""
    concrete = {
        "dag_id": SEEN,
        "run_id": run_id,
        "task_id": TASKS[0],
        "map_index": "0",
        "try_number": "1",
        "xcom_key": "k",
        "import_error_id": str(import_error_id),
    }
    names = _PARAM.findall(rule)
    everywhere = [n for n in names if n in ("dag_id", "run_id", "task_id")] if rule.startswith("/api/") else []
    found = []
    for tildes in itertools.product((False, True), repeat=len(everywhere)):
        values = {n: concrete.get(n, "missing") for n in names}
        values.update({n: "~" for n, tilde in zip(everywhere, tildes, strict=True) if tilde})
        found.append(_PARAM.sub(lambda m, v=values: v[m.group(1)], rule))
    return found


def _import_error_id(web: Any) -> int:
    with web.engine.connect() as conn:
        return conn.execute(
            select(t.import_error.c.id).where(t.import_error.c.stacktrace == f"error in {SEEN}")
        ).scalar()


def _sweep(web: Any, get: Any, run_id: str) -> dict[str, int]:
    """Every GET path's status, after checking the hidden DAG is not in its answer."""
    statuses = {}
    for rule in _get_rules(web.app):
        for path in _paths(rule, run_id, _import_error_id(web)):
            response = get(path)
            body = response.get_data(as_text=True)
            assert response.status_code < 500, (path, response.status_code, body[:300])
            assert HIDDEN not in body, (path, response.status_code)
            statuses[path] = response.status_code
    return statuses


@pytest.mark.database_dependent
def test_a_granted_user_sees_nothing_of_other_dags_on_any_get_route(web, two_dags) -> None:
    run_id = two_dags["runs"][SEEN][0]
    session = web.logged_in("Admin")
    statuses = _sweep(web, session.get, run_id)
    # The sweep looked at the granted DAG's data, not only at refusals.
    assert statuses["/dags"] == 200 and statuses[f"/dags/{SEEN}"] == 200
    assert statuses["/api/v1/dags/~/dagRuns/~/taskInstances"] == 200
    for path in ("/api/v1/dags", "/api/v1/dags/~/dagRuns", "/api/v1/dags/~/dagRuns/~/taskInstances"):
        assert SEEN in session.get(path).text
    xcoms = session.get("/api/v1/dags/~/dagRuns/~/taskInstances/~/xcomEntries").get_json()
    assert {entry["dag_id"] for entry in xcoms["xcom_entries"]} == {SEEN}
    assert xcoms["total_entries"] == 2
    assert [e["filename"] for e in session.get("/api/v1/importErrors").get_json()["import_errors"]] != []
    assert "dag.pause" in session.get("/audit-log").text
    # Through a token, the API answers alike (the test clock runs ahead of the date the token is made on).
    headers = bearer(token_for(web, "Admin", days=365))
    by_token = _sweep(web, lambda path: web.client().get(path, headers=headers), run_id)
    assert by_token["/api/v1/dags/~/dagRuns/~/taskInstances"] == 200


@pytest.mark.database_dependent
def test_without_grants_the_same_sweep_shows_both_dags(web, two_dags) -> None:
    """The check above can fail: the Op user (no grants) is shown the other DAG by the same listings."""
    session = web.logged_in("Op")
    for path in ("/api/v1/dags", "/api/v1/dags/~/dagRuns", "/api/v1/importErrors", "/audit-log", "/dags"):
        assert HIDDEN in session.get(path).text, path


@pytest.mark.database_dependent
def test_the_hidden_dag_is_404_on_single_dag_routes_and_refused_writes(web, two_dags) -> None:
    session = web.logged_in("Admin")
    assert session.get(f"/api/v1/dags/{HIDDEN}").status_code == 404
    assert session.get(f"/api/v1/dags/{HIDDEN}/dagRuns").status_code == 404
    assert session.get(f"/dags/{HIDDEN}/grid.json").status_code == 404
    headers = {"X-CSRF-Token": web.token(session)}
    assert session.patch(f"/api/v1/dags/{HIDDEN}", json={"is_paused": True}, headers=headers).status_code == 404
    # ``~`` in a write names no DAG: refused before anything is written.
    assert session.post("/api/v1/dags/~/dagRuns", json={}, headers=headers).status_code == 400


@pytest.mark.database_dependent
def test_the_live_stream_filter_keeps_only_visible_dags(web, two_dags) -> None:
    from zonda.operations.changes import Change
    from zonda.web.live.subscriptions import ChangeFilter

    admin = find_user_by_id(web.engine, get_user(web.engine, web.users["Admin"]).id)
    op = find_user_by_id(web.engine, get_user(web.engine, web.users["Op"]).id)
    assert visible_dag_ids(web.engine, op) is None
    visible = visible_dag_ids(web.engine, admin)
    assert visible == frozenset({SEEN})

    def change(dag_id: str) -> Change:
        return Change("run", dag_id, "r1", None, None, "running", None, datetime(2025, 1, 1, tzinfo=UTC))

    watching = ChangeFilter(visible=visible)
    assert watching.matches(change(SEEN)) and not watching.matches(change(HIDDEN))
    # A tab asking for the hidden DAG by name still gets nothing of it.
    assert not ChangeFilter(dag_ids=frozenset({HIDDEN}), visible=visible).matches(change(HIDDEN))
    assert ChangeFilter(visible=None).matches(change(HIDDEN))
