"""The state machine (``zonda.operations.transitions``): the only writer of task-instance and DAG-run states, each
write a compare-and-set, and the docs' table generated from it."""

from __future__ import annotations

import ast
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from zonda.metastore import tables as t
from zonda.metastore.db import Metastore
from zonda.operations import transitions as tr
from zonda.state import DagRunState, TaskInstanceState

sys.path.insert(0, str(Path(__file__).parent))
from state_write_scanner import scan_source, scan_tree

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 1, 1, tzinfo=UTC)

# --- only the transitions module writes states ----------------------------------------------------------------


def test_no_module_but_transitions_writes_a_state() -> None:
    findings = scan_tree(REPO, ["core/src", "providers", "plugins"], {"core/src/zonda/operations/transitions.py"})
    assert not findings, "state written outside zonda.operations.transitions:\n" + "\n".join(map(str, findings))


def test_the_scan_covers_the_transitions_module_itself() -> None:
    # The one allowed file does write states: were it scanned, the scanner would say so (it is not blind).
    source = (REPO / "core/src/zonda/operations/transitions.py").read_text(encoding="utf-8")
    assert len(scan_source(source)) > 10


BAD = {
    "keyword": "from sqlalchemy import update\nupdate(t.task_instance).where(x).values(state='success')",
    "alias": "ti = t.task_instance\nconn.execute(update(ti).where(ti.c.id == 1).values(state=None))",
    "tuple alias": "ti, dr = t.task_instance, t.dag_run\nconn.execute(update(dr).values(end_date=now, state=s))",
    "alias of alias": "ti = t.task_instance\ntable = ti\nupdate(table).values(state=s)",
    "self attribute": "ti = self.t.task_instance\nupdate(ti).values(state=s)",
    "splat": "dr = t.dag_run\nupdate(dr).where(dr.c.id == 1).values(**values)",
    "dict key": "update(t.task_instance).values({'state': 'queued', 'pid': None})",
    "dict splat": "update(t.task_instance).values({**values})",
    "dynamic dict": "update(t.dag_run).values(values)",
    "no values": "stmt = update(t.task_instance).where(t.task_instance.c.id == bindparam('i'))\nconn.execute(stmt, p)",
    "table method": "t.dag_run.update().where(x).values(state='failed')",
    "sa module": "import sqlalchemy as sa\nsa.update(t.dag_run).values(state='failed')",
    "model update": "from sqlalchemy import update\nupdate(TaskInstanceModel).values(state='failed')",
    "raw sql": "conn.execute(text(\"UPDATE task_instance SET pid = NULL, state = 'failed' WHERE id = 1\"))",
    "raw sql quoted": "conn.exec_driver_sql('update `dag_run` set state = %s')",
    "raw sql f-string": "conn.execute(text(f\"UPDATE dag_run SET state = '{state}' WHERE id = {i}\"))",
    "orm attribute": "from zonda.metastore.models import TaskInstanceModel\nti = s.get(TaskInstanceModel, 1)\n"
    "ti.state = 'success'",
    "orm module import": "from zonda.metastore import models\nrun = s.get(models.DagRunModel, 1)\nrun.state = x",
    "orm setattr": "from zonda.metastore.models import DagRunModel\nsetattr(run, 'state', 'failed')",
    "orm bulk": "session.query(DagRunModel).filter(DagRunModel.id == 1).update({DagRunModel.state: 'failed'})",
    "orm bulk string key": "session.query(TaskInstanceModel).update({'state': 'failed'})",
    "insert literal": "insert(t.dag_run).values(dag_id='d', state='running')",
}


@pytest.mark.parametrize("snippet", BAD.values(), ids=BAD.keys())
def test_the_scanner_catches_each_way_of_writing_a_state(snippet: str) -> None:
    assert scan_source(snippet), snippet


GOOD = {
    "other columns": "ti = t.task_instance\nupdate(ti).where(ti.c.id == 1).values(map_index=0)",
    "other table": "update(t.job).where(t.job.c.id == 1).values(state='success')",
    "dag table splat": "update(t.dag).values(**values)",
    "in-memory instance": "ti.state = TaskInstanceState.RUNNING",
    "dict update": "ti = t.task_instance\nvalues.update(state='queued')",
    "insert with enum": "insert(t.dag_run).values(state=DagRunState.QUEUED.value)",
    "select": "select(t.task_instance).where(t.task_instance.c.state == 'running')",
    "raw select": "text('SELECT state FROM task_instance')",
}


@pytest.mark.parametrize("snippet", GOOD.values(), ids=GOOD.keys())
def test_the_scanner_leaves_other_code_alone(snippet: str) -> None:
    assert scan_source(snippet) == []


def test_transitions_use_the_enums_not_string_literals() -> None:
    tree = ast.parse((REPO / "core/src/zonda/operations/transitions.py").read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    names = {s.value for s in TaskInstanceState} | {s.value for s in DagRunState}
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings
    ]
    assert literals == []


def test_finished_states_are_defined_once() -> None:
    # decisions.py used to keep its own copy of the finished states; state.py is the one definition.
    for path in (REPO / "core/src/zonda").rglob("*.py"):
        if path.name == "state.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert 'frozenset({"success", "failed"' not in text, path


# --- every transition says what it does and who calls it ------------------------------------------------------


def test_every_transition_is_described() -> None:
    assert len(tr.TRANSITIONS) >= 20
    for spec in tr.TRANSITIONS.values():
        assert spec.sources and spec.targets and spec.callers and spec.summary, spec
        assert getattr(tr, spec.name).transition is spec


def test_a_transition_refuses_a_target_it_does_not_make(metastore: Metastore) -> None:
    with metastore.engine.begin() as conn, pytest.raises(ValueError, match="finish_ti moves a task instance to"):
        tr.finish_ti(conn, 1, "a", -1, TaskInstanceState.QUEUED, {}, pid=1)
    with metastore.engine.begin() as conn, pytest.raises(ValueError, match="not among the column values"):
        tr.start_ti(conn, 1, "a", -1, {"state": "running"})


def test_the_docs_table_is_generated_from_the_module() -> None:
    committed = (REPO / "docs/state_machine.md").read_text(encoding="utf-8")
    assert committed == tr.markdown(), (
        "regenerate: python -m zonda.operations.transitions --markdown docs/state_machine.md"
    )
    for name in tr.TRANSITIONS:
        assert f"| `{name}` |" in committed


def test_the_markdown_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "states.md"
    assert tr.main(["--markdown", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == tr.markdown()


# --- compare-and-set, on every backend ------------------------------------------------------------------------


def _setup(url: str, ti_states: list[str | None], run_state: str = "running") -> tuple[Metastore, int, list[int]]:
    store = Metastore(url)
    store.init()
    with store.engine.begin() as conn:
        run_id = conn.execute(
            insert(t.dag_run).values(
                dag_id="d", run_id="r", run_type="manual", state=run_state, logical_date=NOW, queued_at=NOW
            )
        ).inserted_primary_key[0]
        ids = []
        for i, state in enumerate(ti_states):
            ids.append(
                conn.execute(
                    insert(t.task_instance).values(
                        dag_run_id=run_id, dag_id="d", run_id="r", task_id=f"t{i}", state=state, pid=100 + i
                    )
                ).inserted_primary_key[0]
            )
    return store, int(run_id), [int(i) for i in ids]


def _states(store: Metastore) -> dict[str, str | None]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(t.task_instance.c.task_id, t.task_instance.c.state)).all())


def _race(store: Metastore, attempt, rounds: int) -> list[list[int]]:
    """Run ``attempt(conn, round)`` in two threads at once, each in its own transaction, ``rounds`` times."""
    results: list[list[int]] = []
    for index in range(rounds):
        barrier = threading.Barrier(2, timeout=30)
        out: list[int] = []
        errors: list[BaseException] = []

        def worker(
            index: int = index,
            barrier: threading.Barrier = barrier,
            out: list[int] = out,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                with store.engine.connect() as conn:
                    barrier.wait()
                    changed = attempt(conn, index)
                    conn.commit()
                out.append(changed)
            except BaseException as exc:  # reported below, with the thread's traceback
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        results.append(sorted(out))
    return results


def test_two_task_processes_claiming_one_instance_only_one_wins(metastore_url: str) -> None:
    store, run_id, _ = _setup(metastore_url, ["queued"] * 4)
    try:
        results = _race(store, lambda conn, i: tr.start_ti(conn, run_id, f"t{i}", -1, {"pid": 1}), rounds=4)
        assert results == [[0, 1]] * 4
        assert set(_states(store).values()) == {"running"}
    finally:
        store.dispose()


def test_two_schedulers_queueing_the_same_instances_only_one_wins(metastore_url: str) -> None:
    store, _, ids = _setup(metastore_url, ["scheduled"] * 3)
    try:
        results = _race(store, lambda conn, _i: tr.queue_tis(conn, ids, job_id=1, now=NOW), rounds=1)
        assert results == [[0, 3]]
    finally:
        store.dispose()


def test_a_run_finishes_once(metastore_url: str) -> None:
    store, run_id, _ = _setup(metastore_url, [])
    try:
        assert _race(store, lambda conn, _i: tr.finish_run(conn, run_id, DagRunState.SUCCESS, end_date=NOW), 1) == [
            [0, 1]
        ]
    finally:
        store.dispose()


def test_a_transition_from_the_wrong_state_changes_nothing(metastore_url: str) -> None:
    store, run_id, ids = _setup(metastore_url, ["scheduled", "running", None, "success"], run_state="queued")
    try:
        with store.engine.begin() as conn:
            assert tr.start_ti(conn, run_id, "t0", -1, {"pid": 1}) == 0  # not queued
            assert tr.finish_ti(conn, run_id, "t1", -1, TaskInstanceState.SUCCESS, {}, pid=999) == 0  # not its pid
            assert tr.heartbeat_ti(conn, run_id, "t1", -1, pid=999) == 0
            assert tr.queue_tis(conn, [ids[2], ids[3]], job_id=1, now=NOW) == 0  # none and success
            assert tr.settle_tis(conn, [ids[3]], TaskInstanceState.SKIPPED, now=NOW) == 0
            assert (
                tr.fail_stale_ti(
                    conn, ids[1], seen=TaskInstanceState.QUEUED, state=TaskInstanceState.FAILED, ready_at=None, now=NOW
                )
                == 0
            )  # it is running, not queued as the caller read
            assert tr.finish_run(conn, run_id, DagRunState.SUCCESS, end_date=NOW) == 0  # queued, not running
            assert tr.clear_tis(conn, [(tr.Seen(ids[3], TaskInstanceState.FAILED), 0)], now=NOW) == 0
        assert _states(store) == {"t0": "scheduled", "t1": "running", "t2": None, "t3": "success"}
        with store.engine.begin() as conn:  # and from the right state, each changes its row
            assert tr.finish_ti(conn, run_id, "t1", -1, TaskInstanceState.SUCCESS, {}, pid=101) == 1
            assert tr.schedule_tis(conn, [ids[2]], now=NOW) == 1
            assert tr.queue_tis(conn, [ids[0], ids[2]], job_id=1, now=NOW) == 2
            assert tr.start_run(conn, run_id, now=NOW) == 1
            assert tr.clear_tis(conn, [(tr.Seen(ids[3], TaskInstanceState.SUCCESS), 0)], now=NOW) == 1
        assert _states(store) == {"t0": "queued", "t1": "success", "t2": "queued", "t3": None}
    finally:
        store.dispose()


def test_a_task_process_ending_a_phase_writes_one_history_row(metastore_url: str) -> None:
    """PostgreSQL ends the phase and archives it in one statement, the others in two: the rows are the same."""
    later = datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
    store, run_id, ids = _setup(metastore_url, ["running", "running", "running"])
    try:
        with store.engine.begin() as conn:
            ended = {"end_date": later, "duration": 300.0}
            assert tr.finish_ti(conn, run_id, "t0", -1, TaskInstanceState.SUCCESS, ended, pid=100) == 1
            assert tr.finish_ti(conn, run_id, "t0", -1, TaskInstanceState.SUCCESS, ended, pid=100) == 0  # ended
            assert tr.finish_ti(conn, run_id, "t1", -1, TaskInstanceState.FAILED, ended, pid=999) == 0  # not its pid
            assert tr.reschedule_ti(conn, run_id, "t2", -1, {"ready_at": later}, pid=102) == 1
            h = t.task_instance_history
            rows = conn.execute(
                select(h.c.task_instance_id, h.c.task_id, h.c.state, h.c.end_date, h.c.dag_run_id).order_by(h.c.id)
            ).all()
        assert [(r.task_instance_id, r.task_id, r.state, r.dag_run_id) for r in rows] == [
            (ids[0], "t0", "success", run_id),
            (ids[2], "t2", "up_for_reschedule", run_id),
        ]
        assert rows[0].end_date == later  # the try's end_date
        assert rows[1].end_date is not None  # the phase's end, now
        assert _states(store) == {"t0": "success", "t1": "running", "t2": "up_for_reschedule"}
    finally:
        store.dispose()
