"""Clearing and marking task instances and setting runs' states (``zonda.operations``), through the operations and
through ``zonda tasks clear``, on every metastore backend."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from zonda.cli import main
from zonda.exceptions import ZondaException
from zonda.metastore import tables as t
from zonda.metastore.db import Metastore
from zonda.operations.dag_runs_state import set_dag_runs_state
from zonda.operations.task_instances import Selection, clear_task_instances, mark_task_instances

DAG_FILE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import BashOperator

with DAG("ops", schedule=None, start_date=datetime(2024, 1, 1)):
    a = BashOperator(task_id="a", bash_command="echo a")
    b = BashOperator(task_id="b", bash_command="exit 1")
    c = BashOperator(task_id="c", bash_command="echo c")
    d = BashOperator(task_id="d", bash_command="echo d")
    a >> b >> c
"""
DATES = ["2024-01-01", "2024-01-02", "2024-01-03"]
RUNS = [f"test__{day}T00:00:00+00:00" for day in DATES]


@pytest.fixture
def ops(zonda_home: Path, metastore_url: str, monkeypatch: pytest.MonkeyPatch, capfd) -> Metastore:
    """DAG ``ops`` (a >> b >> c, and d; b fails) with three runs made by ``zonda dags test``."""
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", metastore_url)
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "ops.py").write_text(textwrap.dedent(DAG_FILE), encoding="utf-8")
    store = Metastore(metastore_url)
    store.init()
    for day in DATES:
        assert main(["dags", "test", "ops", day, "--quiet"]) == 1  # b fails
    capfd.readouterr()
    yield store
    store.dispose()


def _states(store: Metastore) -> dict[tuple[str, str], str | None]:
    ti = t.task_instance
    with store.engine.connect() as conn:
        return {(r.run_id, r.task_id): r.state for r in conn.execute(select(ti.c.run_id, ti.c.task_id, ti.c.state))}


def _runs(store: Metastore) -> dict[str, tuple[str, str]]:
    dr = t.dag_run
    with store.engine.connect() as conn:
        return {r.run_id: (r.state, r.run_type) for r in conn.execute(select(dr.c.run_id, dr.c.state, dr.c.run_type))}


def _picked(outcome) -> set[tuple[str, str]]:
    return {(r.run_id, r.task_id) for r in outcome.instances}


def test_clear_options_select_what_airflow_selects_and_a_dry_run_changes_nothing(ops: Metastore) -> None:
    before = _states(ops)
    engine = ops.engine

    def dry(**options) -> set[tuple[str, str]]:
        return _picked(clear_task_instances(engine, Selection("ops", **options), dry_run=True))

    middle = [RUNS[1]]
    assert dry(task_ids=["b"], run_ids=middle) == {(RUNS[1], "b")}
    assert dry(task_ids=["b"], run_ids=middle, downstream=True) == {(RUNS[1], "b"), (RUNS[1], "c")}
    assert dry(task_ids=["b"], run_ids=middle, upstream=True) == {(RUNS[1], "a"), (RUNS[1], "b")}
    assert dry(task_ids=["b"], run_ids=middle, past=True) == {(RUNS[0], "b"), (RUNS[1], "b")}
    assert dry(task_ids=["b"], run_ids=middle, future=True) == {(RUNS[1], "b"), (RUNS[2], "b")}
    assert dry(task_ids=["b"], run_ids=middle, past=True, future=True) == {(run, "b") for run in RUNS}
    assert dry(run_ids=middle, only_failed=True) == {(RUNS[1], "b"), (RUNS[1], "c")}  # failed, upstream_failed
    assert dry(task_regex="^[ad]$", run_ids=[RUNS[2]]) == {(RUNS[2], "a"), (RUNS[2], "d")}
    preview = clear_task_instances(engine, Selection("ops", task_ids=["b"], run_ids=middle), dry_run=True)
    assert preview.dry_run and preview.runs == [RUNS[1]] and preview.handed_to_scheduler == [RUNS[1]]
    assert _states(ops) == before  # nothing was written
    assert _runs(ops)[RUNS[1]] == ("failed", "test")


def test_clear_resets_the_instances_and_queues_their_runs_for_the_scheduler(ops: Metastore) -> None:
    outcome = clear_task_instances(ops.engine, Selection("ops", task_ids=["b"], run_ids=[RUNS[1]], downstream=True))
    assert (outcome.changed, outcome.changed_meanwhile) == (2, 0)
    states = _states(ops)
    assert (states[(RUNS[1], "b")], states[(RUNS[1], "c")]) == (None, None)
    assert states[(RUNS[1], "a")] == "success" and states[(RUNS[0], "b")] == "failed"  # others untouched
    runs = _runs(ops)
    assert runs[RUNS[1]] == ("queued", "manual")  # a dags-test run goes to the scheduler
    assert runs[RUNS[0]] == ("failed", "test")


def test_bad_selections_are_refused_with_the_fix(ops: Metastore) -> None:
    with pytest.raises(ZondaException, match=r"has no task 'bb'.*did you mean 'b'"):
        clear_task_instances(ops.engine, Selection("ops", task_ids=["bb"]), dry_run=True)
    with pytest.raises(ZondaException, match="has no run 'nope'"):
        mark_task_instances(ops.engine, Selection("ops", run_ids=["nope"]), "success")
    with pytest.raises(ZondaException, match="not a valid regular expression"):
        clear_task_instances(ops.engine, Selection("ops", task_regex="("), dry_run=True)
    with pytest.raises(ZondaException, match="can be marked success, failed, skipped; not 'running'"):
        mark_task_instances(ops.engine, Selection("ops"), "running")
    with pytest.raises(ZondaException, match="can be set to queued, success, failed; not 'running'"):
        set_dag_runs_state(ops.engine, "ops", [RUNS[0]], "running")
    assert all(state is not None for state in _states(ops).values())


def test_mark_success_with_downstream_and_past(ops: Metastore) -> None:
    selection = Selection("ops", task_ids=["b"], run_ids=[RUNS[1]], downstream=True, past=True)
    preview = mark_task_instances(ops.engine, selection, "success", dry_run=True)
    assert _picked(preview) == {(RUNS[0], "b"), (RUNS[0], "c"), (RUNS[1], "b"), (RUNS[1], "c")}
    assert _states(ops)[(RUNS[0], "b")] == "failed"
    outcome = mark_task_instances(ops.engine, selection, "success")
    assert outcome.changed == 4
    states = _states(ops)
    assert {states[key] for key in _picked(preview)} == {"success"}
    assert states[(RUNS[2], "b")] == "failed"
    # Marking what is already in that state changes nothing.
    assert mark_task_instances(ops.engine, selection, "success").instances == []


def test_mark_failed_only_touches_the_selection(ops: Metastore) -> None:
    outcome = mark_task_instances(ops.engine, Selection("ops", task_ids=["d"], run_ids=RUNS[:2]), "failed")
    assert outcome.changed == 2
    states = _states(ops)
    assert (states[(RUNS[0], "d")], states[(RUNS[1], "d")], states[(RUNS[2], "d")]) == ("failed", "failed", "success")


def test_set_runs_state_in_bulk_with_their_instances(ops: Metastore) -> None:
    preview = set_dag_runs_state(ops.engine, "ops", RUNS[:2], "success", dry_run=True)
    assert [r.run_id for r in preview.runs] == RUNS[:2]
    assert {(task, str(to)) for task, _, _, to in preview.runs[0].instances} == {("b", "success"), ("c", "success")}
    assert _runs(ops)[RUNS[0]][0] == "failed"
    set_dag_runs_state(ops.engine, "ops", RUNS[:2], "success")
    runs, states = _runs(ops), _states(ops)
    assert runs[RUNS[0]][0] == runs[RUNS[1]][0] == "success" and runs[RUNS[2]][0] == "failed"
    assert {states[(run, task)] for run in RUNS[:2] for task in "abcd"} == {"success"}

    # Failed: unfinished instances are skipped, finished ones stay.
    clear_task_instances(ops.engine, Selection("ops", task_ids=["c", "d"], run_ids=[RUNS[2]]))
    set_dag_runs_state(ops.engine, "ops", [RUNS[2]], "failed")
    states = _states(ops)
    assert [states[(RUNS[2], task)] for task in "abcd"] == ["success", "failed", "skipped", "skipped"]
    assert _runs(ops)[RUNS[2]][0] == "failed"

    # Queued: only the run; a dags-test run becomes a manual one, which the scheduler runs.
    set_dag_runs_state(ops.engine, "ops", [RUNS[0]], "queued")
    assert _runs(ops)[RUNS[0]] == ("queued", "manual")
    assert states[(RUNS[0], "a")] == "success"


def test_a_run_dags_test_is_running_is_refused(ops: Metastore) -> None:
    from sqlalchemy import update

    with ops.engine.begin() as conn:  # as if `dags test` were still running it
        conn.execute(update(t.dag_run).where(t.dag_run.c.run_id == RUNS[0]).values(state="running"))
    before = _states(ops)
    with pytest.raises(ZondaException, match=r"being run by `zonda dags test`.*nothing was marked"):
        mark_task_instances(ops.engine, Selection("ops", run_ids=[RUNS[0]]), "success")
    with pytest.raises(ZondaException, match="being run by `zonda dags test`"):
        set_dag_runs_state(ops.engine, "ops", [RUNS[0]], "failed")
    assert _states(ops) == before


def test_cli_clear_dry_run_lists_and_changes_nothing_then_clears(ops: Metastore, capfd) -> None:
    before = _states(ops)
    code = main(["tasks", "clear", "ops", "-t", "^b$", "--downstream", "--run-id", RUNS[1], "--dry-run"])
    out, _ = capfd.readouterr()
    assert code == 0
    assert "would reset these 2 task instance(s)" in out and "nothing was changed" in out
    assert "upstream_failed" in out  # the listing shows c's state
    assert _states(ops) == before
    assert main(["tasks", "clear", "ops", "-t", "^b$", "--downstream", "--run-id", RUNS[1], "--yes"]) == 0
    out, _ = capfd.readouterr()
    assert "Cleared 2 task instance(s) in 1 run(s) of ops" in out
    assert _states(ops)[(RUNS[1], "c")] is None
