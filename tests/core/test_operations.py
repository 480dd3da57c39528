"""The operations layer (``zonda.operations``) that the CLI, the web server and the API share, on SQLite and
PostgreSQL with DAGs stored by the real DAG processor: typed results, filters, and errors of the three kinds an
API maps to HTTP codes (NotFound 404, Conflict 409, other ZondaException 400)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.exceptions import (
    Conflict,
    ConnectionNotFound,
    DagNotFound,
    NotFound,
    OperationError,
    ParamValidationError,
    TaskNotFound,
)
from zonda.operations import connections, dag_runs, dags, pools, task_instances_read

DAGS = """
from datetime import datetime
from zonda import DAG, Param
from zonda.operators import PythonOperator


def work():
    return None


with DAG("ops_one", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=False, tags=["etl", "daily"],
         params={"limit": Param(3, type="integer", minimum=1)}):
    first = PythonOperator(task_id="first", python_callable=work)
    second = PythonOperator(task_id="second", python_callable=work)
    first >> second

with DAG("ops_two", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="only", python_callable=work)
"""


@dataclass
class Ops:
    settings: Any
    metastore: Any

    @property
    def engine(self) -> Any:
        return self.metastore.engine

    def run(self, dag_id: str, run_id: str, day: int) -> dag_runs.DagRunRecord:
        return dag_runs.trigger(self.engine, dag_id, run_id=run_id, logical_date=datetime(2024, 1, day, tzinfo=UTC))

    def start(self) -> None:
        """The scheduler's run-starting and deciding steps (nothing is queued or run)."""
        from zonda.executors.local import LocalExecutor
        from zonda.scheduler.scheduler import Scheduler

        scheduler = Scheduler(
            self.settings, executor=LocalExecutor(4, settings=self.settings), metastore=self.metastore
        )
        scheduler._start_queued_runs()
        scheduler._decide(True)

    def set_state(self, run_id: str, task_id: str, state: str | None) -> None:
        from sqlalchemy import update

        from zonda.metastore import tables as t

        ti = t.task_instance
        with self.engine.begin() as conn:
            conn.execute(update(ti).where(ti.c.run_id == run_id, ti.c.task_id == task_id).values(state=state))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ops(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ops]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    settings, metastore = h.configure(zonda_home, monkeypatch, url)
    try:
        h.write_dag(zonda_home, "ops_dags.py", DAGS)
        h.store_dags(settings, metastore)
        yield Ops(settings, metastore)
    finally:
        metastore.dispose()


def test_error_kinds_map_to_http_codes() -> None:
    """The API maps NotFound to 404 and Conflict to 409: the existing not-found errors are NotFound."""
    from zonda.secrets.metastore import ConnectionExists

    for cls in (DagNotFound, TaskNotFound, ConnectionNotFound):
        assert issubclass(cls, NotFound)
    assert issubclass(ConnectionExists, Conflict)
    assert issubclass(NotFound, OperationError) and issubclass(Conflict, OperationError)


# --- dags ---------------------------------------------------------------------------------------------------------


def test_list_dags_with_paused_state_and_recent_runs(ops: Ops) -> None:
    for day in (1, 2, 3):
        ops.run("ops_one", f"r{day}", day)
    ops.start()  # r1 runs (max_active_runs 16: all three start)
    dags.set_paused(ops.engine, "ops_two", True)

    listed = {d.dag_id: d for d in dags.list_dags(ops.engine, recent=2)}
    assert set(listed) == {"ops_one", "ops_two"}
    one = listed["ops_one"]
    assert set(one.tags) == {"etl", "daily"} and not one.is_paused and one.schedule
    assert one.recent_run_states == ("running", "running")  # the two newest only
    assert listed["ops_two"].is_paused and listed["ops_two"].recent_run_states == ()
    assert [d.dag_id for d in dags.list_dags(ops.engine, paused=True)] == ["ops_two"]
    assert dags.get_dag(ops.engine, "ops_one", recent=5).recent_run_states == ("running",) * 3


def test_pause_of_an_unknown_dag_suggests_the_closest(ops: Ops) -> None:
    with pytest.raises(DagNotFound, match="did you mean 'ops_one'"):
        dags.set_paused(ops.engine, "ops_on", True)


def test_delete_dag_removes_its_history_and_refuses_while_tasks_run(ops: Ops) -> None:
    from sqlalchemy import func, select

    from zonda.metastore import tables as t

    ops.run("ops_one", "r1", 1)
    ops.run("ops_one", "r2", 2)
    ops.run("ops_two", "keep", 1)
    ops.start()
    ops.set_state("r1", "first", "running")
    with pytest.raises(Conflict, match=r"first in run 'r1' is running"):
        dags.delete_dag(ops.engine, "ops_one")
    assert len(dag_runs.list_runs(ops.engine, "ops_one")) == 2  # nothing deleted

    ops.set_state("r1", "first", "success")
    deleted = dags.delete_dag(ops.engine, "ops_one")
    assert (deleted.dag_runs, deleted.task_instances) == (2, 4)
    with pytest.raises(DagNotFound):
        dags.get_dag(ops.engine, "ops_one")
    with ops.engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(t.task_instance)).scalar()
    assert left == 1  # ops_two's run is untouched
    assert [r.run_id for r in dag_runs.list_runs(ops.engine, "ops_two")] == ["keep"]


# --- dag runs -----------------------------------------------------------------------------------------------------


def test_trigger_validates_conf_and_refuses_a_taken_run_id(ops: Ops) -> None:
    with pytest.raises(ParamValidationError, match="limit"):
        dag_runs.trigger(ops.engine, "ops_one", conf={"limit": 0})
    run = dag_runs.trigger(ops.engine, "ops_one", conf={"limit": 5, "api_token": "s3cr3t"}, run_id="mine")
    assert (run.state, run.run_type, run.external_trigger) == ("queued", "manual", True)
    assert run.conf == {"limit": 5, "api_token": "***"}  # a secret-looking conf key is never returned
    with pytest.raises(Conflict, match="already has a run 'mine'"):
        dag_runs.trigger(ops.engine, "ops_one", run_id="mine")


def test_list_runs_filters_by_state_and_dates(ops: Ops) -> None:
    for day in (1, 2, 3, 4):
        ops.run("ops_one", f"r{day}", day)
    ops.start()
    from sqlalchemy import update

    from zonda.metastore import tables as t

    with ops.engine.begin() as conn:
        conn.execute(update(t.dag_run).where(t.dag_run.c.run_id == "r2").values(state="failed"))

    def ids(**filters: Any) -> list[str]:
        return [r.run_id for r in dag_runs.list_runs(ops.engine, "ops_one", **filters)]

    assert ids() == ["r4", "r3", "r2", "r1"]
    assert ids(states=["failed"]) == ["r2"]
    assert ids(
        logical_date_from=datetime(2024, 1, 2, tzinfo=UTC), logical_date_to=datetime(2024, 1, 3, tzinfo=UTC)
    ) == [
        "r3",
        "r2",
    ]
    assert ids(limit=2, offset=1) == ["r3", "r2"]
    assert [r.run_id for r in dag_runs.list_runs(ops.engine)] == ["r4", "r3", "r2", "r1"]
    with pytest.raises(OperationError, match="unknown run state 'done'"):
        ids(states=["done"])
    with pytest.raises(DagNotFound):
        dag_runs.list_runs(ops.engine, "ops_none")


def test_get_run_suggests_run_ids(ops: Ops) -> None:
    ops.run("ops_one", "nightly_1", 1)
    assert dag_runs.get_run(ops.engine, "ops_one", "nightly_1").logical_date == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(NotFound, match="did you mean 'nightly_1'"):
        dag_runs.get_run(ops.engine, "ops_one", "nightly_2")


# --- task instances --------------------------------------------------------------------------------------------


def test_states_for_dag_run_and_listing_instances(ops: Ops) -> None:
    ops.run("ops_one", "r1", 1)
    assert task_instances_read.states_for_dag_run(ops.engine, "ops_one", "r1") == []  # not started yet
    ops.start()
    records = task_instances_read.states_for_dag_run(ops.engine, "ops_one", "r1")
    assert [(r.task_id, r.state) for r in records] == [("first", "scheduled"), ("second", None)]

    undecided = task_instances_read.list_task_instances(ops.engine, "ops_one", states=[None])
    assert [r.task_id for r in undecided] == ["second"]
    both = task_instances_read.list_task_instances(ops.engine, "ops_one", states=["scheduled", "none"])
    assert sorted(r.task_id for r in both) == ["first", "second"]
    one = task_instances_read.get_task_instance(ops.engine, "ops_one", "first", "r1")
    assert (one.label, one.pool, one.max_tries) == ("ops_one.first", "default_pool", 0)
    with pytest.raises(NotFound, match=r"no instance ops_one.first\[2\]; its map indexes are -1"):
        task_instances_read.get_task_instance(ops.engine, "ops_one", "first", "r1", map_index=2)


def test_locating_a_log_try(ops: Ops) -> None:
    from zonda.operations.logs import locate_try

    ops.run("ops_one", "r1", 1)
    ops.start()
    with pytest.raises(OperationError, match="has not started"):
        locate_try(ops.engine, "ops_one", "first", "r1")
    from sqlalchemy import update

    from zonda.metastore import tables as t

    with ops.engine.begin() as conn:
        conn.execute(update(t.task_instance).where(t.task_instance.c.task_id == "first").values(try_number=2))
    assert locate_try(ops.engine, "ops_one", "first", "r1").try_number == 2
    assert locate_try(ops.engine, "ops_one", "first", "r1", try_number=1).key.try_number == 1
    with pytest.raises(OperationError, match="--try must be 1 to 2"):
        locate_try(ops.engine, "ops_one", "first", "r1", try_number=3)
    with pytest.raises(NotFound, match="has no task 'frist'"):
        locate_try(ops.engine, "ops_one", "frist", "r1")


# --- pools ----------------------------------------------------------------------------------------------------


def test_pools(ops: Ops) -> None:
    pool, created = pools.set_pool(ops.engine, "api_calls", 3, "the partner API")
    assert created and (pool.slots, pool.open_slots, pool.description) == (3, 3, "the partner API")
    pool, created = pools.set_pool(ops.engine, "api_calls", 5)
    assert not created and (pool.slots, pool.description) == (5, "the partner API")
    with pytest.raises(OperationError, match="slots must be 0 or more"):
        pools.set_pool(ops.engine, "api_calls", -1)
    with pytest.raises(Conflict, match="default_pool cannot be deleted"):
        pools.delete_pool(ops.engine, "default_pool")
    with pytest.raises(NotFound, match="did you mean 'api_calls'"):
        pools.delete_pool(ops.engine, "api_call")
    pools.delete_pool(ops.engine, "api_calls")
    assert "api_calls" not in {p.pool for p in pools.list_pools(ops.engine)}


def test_pool_usage_counts_queued_and_running_slots(ops: Ops) -> None:
    ops.run("ops_one", "r1", 1)
    ops.run("ops_two", "r1", 1)
    ops.start()
    ops.set_state("r1", "first", "running")
    ops.set_state("r1", "only", "queued")
    default = pools.get_pool(ops.engine, "default_pool")
    assert (default.running, default.queued, default.open_slots) == (1, 1, default.slots - 2)


# --- connections ----------------------------------------------------------------------------------------------


def test_connections_never_return_secrets(ops: Ops) -> None:
    from zonda.connection import Connection

    secret = "hunter2-very-secret"
    conn = Connection(
        conn_id="warehouse",
        conn_type="postgres",
        host="db.example",
        login="etl",
        password=secret,
        extra={"sslmode": "require", "api_key": "k-" + secret},
    )
    added = connections.add_connection(ops.metastore, ops.settings, conn)
    listed = connections.list_connections(ops.metastore, ops.settings)
    got = connections.get_connection(ops.settings, "warehouse", metastore=ops.metastore)
    for record in (added, *listed, got):
        assert secret not in repr(record)
        assert record.password == "***" and record.extra == {"sslmode": "require", "api_key": "***"}
    assert "metastore" in got.source
    with pytest.raises(Conflict, match="already exists"):
        connections.add_connection(ops.metastore, ops.settings, conn)
    # The one operation that returns secrets, for `connections export` only.
    assert connections.export_connections(ops.metastore, ops.settings)["warehouse"]["password"] == secret
    connections.delete_connection(ops.metastore, ops.settings, "warehouse")
    with pytest.raises(ConnectionNotFound):
        connections.delete_connection(ops.metastore, ops.settings, "warehouse")


def test_importing_connections_checks_every_id_first(ops: Ops) -> None:
    from zonda.identifiers import InvalidIdentifier

    with pytest.raises(InvalidIdentifier, match=r"upload\.json"):
        connections.connections_from_data({"good": "http://h", "bad id!": "http://h"}, "upload.json")
    conns = connections.connections_from_data({"a": "http://h", "b": {"conn_type": "http", "host": "x"}}, "f")
    first = connections.import_connections(ops.metastore, ops.settings, conns)
    again = connections.import_connections(ops.metastore, ops.settings, conns)
    assert (first.added, again.skipped) == (("a", "b"), ("a", "b"))
    replaced = connections.import_connections(ops.metastore, ops.settings, conns, overwrite=True)
    assert replaced.replaced == ("a", "b")


def test_testing_a_connection_is_off_unless_enabled(ops: Ops) -> None:
    with pytest.raises(OperationError, match="testing connections is disabled"):
        connections.check_connection(ops.settings, "anything")


# --- the CLI's new commands -------------------------------------------------------------------------------------


def test_cli_dags_delete(ops: Ops, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.cli import main

    ops.run("ops_two", "r1", 1)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["dags", "delete", "ops_two"]) == 1
    assert "Cancelled" in capsys.readouterr().err
    assert main(["dags", "delete", "ops_two", "--yes"]) == 0
    assert "Deleted DAG ops_two: 1 run(s)" in capsys.readouterr().out
    assert main(["dags", "delete", "ops_two", "--yes"]) == 1
    assert capsys.readouterr().err.startswith("error: no DAG 'ops_two' in the metastore")


def test_cli_list_runs_by_dates(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from zonda.cli import main

    for day in (1, 2, 3):
        ops.run("ops_one", f"r{day}", day)
    assert main(["dags", "list-runs", "ops_one", "-s", "2024-01-02", "-e", "2024-01-02", "-o", "json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == ["r2"]
