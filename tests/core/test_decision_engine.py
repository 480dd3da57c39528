"""The decision engine (``zonda.decision_engine``) and the cases where ``dags test`` and the scheduler used to
decide differently (found by ``test_decision_engine_property.py``), with the states Airflow reaches.

- An ``always`` task does not wait for its upstream tasks: it is ready when the run starts.
- A pass settles tasks in dependency order, so a task sees every upstream settled in the same pass (an
  ``all_success`` task below a skipped and an upstream-failed task is ``upstream_failed``, not ``skipped``).
- Ready tasks run by priority (the weight rule's total), then in creation order, in both paths.
- A branch skips a target waiting for its retry (``up_for_retry``), in both paths.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.decision_engine import (
    DagShape,
    TaskShape,
    decide,
    is_skippable,
    priority_weight_totals,
    run_order_key,
    run_state,
)
from zonda.runner.trigger_rules import Decision
from zonda.trigger_rule import TriggerRule as TR


def shape(edges: list[tuple[str, str]], rules: dict[str, TR], tasks: list[str]) -> DagShape:
    return DagShape(
        TaskShape(
            task_id=tid,
            upstream=frozenset(a for a, b in edges if b == tid),
            downstream=frozenset(b for a, b in edges if a == tid),
            trigger_rule=rules.get(tid, TR.ALL_SUCCESS),
        )
        for tid in tasks
    )


def apply(dag: DagShape, states: dict[str, Any], candidates: Any = None) -> list[tuple[str, Decision]]:
    """Decide like a caller does: runs become ``scheduled``, settlements their state."""
    decisions = []
    for task_id, decision in decide(dag, lambda tid: [states[tid]], candidates):
        decisions.append((task_id, decision))
        states[task_id] = "scheduled" if decision is Decision.RUN else str(decision.value)
    return decisions


def test_always_is_ready_before_any_upstream_ends() -> None:
    dag = shape([("u", "t")], {"t": TR.ALWAYS}, ["u", "t"])
    assert apply(dag, {"u": None, "t": None}) == [("u", Decision.RUN), ("t", Decision.RUN)]


def test_a_pass_settles_in_dependency_order_so_a_task_sees_all_settled_upstreams() -> None:
    dag = shape(
        [("t0", "t1"), ("t0", "t2"), ("t1", "t3"), ("t2", "t3")],
        {"t1": TR.ALL_SKIPPED},
        ["t0", "t1", "t2", "t3"],
    )
    states: dict[str, Any] = {"t0": "failed", "t1": None, "t2": None, "t3": None}
    apply(dag, states, candidates={"t1", "t2"})
    assert states == {"t0": "failed", "t1": "skipped", "t2": "upstream_failed", "t3": "upstream_failed"}
    assert run_state(dag, lambda tid: [states[tid]]) == "failed"


def test_walking_only_the_downstream_of_what_changed_decides_like_walking_everything() -> None:
    """The in-process runner walks the downstream tasks of what ended; the scheduler walks every task."""
    rng = random.Random(5)
    rules = list(TR)
    for _ in range(300):
        n = rng.randint(2, 7)
        tasks = [f"t{i}" for i in range(n)]
        edges = [(f"t{i}", f"t{j}") for i in range(n) for j in range(i + 1, n) if rng.random() < 0.4]
        dag = shape(edges, {t: rng.choice(rules) for t in tasks}, tasks)
        ended = {t: rng.choice(("success", "failed", "skipped")) for t in tasks if rng.random() < 0.4}
        # A consistent start: what has not ended was decided in earlier passes except for these new ends.
        full: dict[str, Any] = {t: ended.get(t) for t in tasks}
        incremental = dict(full)
        apply(dag, full)
        changed = {b for a, b in edges if a in ended} | {t for t in tasks if not dag.tasks[t].upstream}
        changed |= {t for t in tasks if dag.tasks[t].trigger_rule is TR.ALWAYS}
        apply(dag, incremental, candidates=changed)
        assert incremental == full, (edges, ended)


def test_ready_instances_run_by_priority_then_creation() -> None:
    keys = [run_order_key(1, 0), run_order_key(5, 3), run_order_key(1, 2)]
    assert sorted(keys) == [run_order_key(5, 3), run_order_key(1, 0), run_order_key(1, 2)]
    totals = priority_weight_totals(
        {"a": (1, "downstream", [], ["b"]), "b": (2, "downstream", ["a"], []), "c": (7, "absolute", [], [])}
    )
    assert totals == {"a": 3, "b": 2, "c": 7}


def test_a_skip_applies_to_instances_that_have_not_started_a_try() -> None:
    assert [s for s in (None, "none", "scheduled", "queued", "up_for_retry", "up_for_reschedule") if is_skippable(s)]
    assert not any(is_skippable(s) for s in ("running", "deferred", "success", "failed", "skipped"))


DAGS = """
from datetime import datetime

from zonda import DAG
from zonda.operators import BranchPythonOperator, PythonOperator, ShortCircuitOperator

START = datetime(2024, 1, 1)


def work(**context):
    pass


def fail(**context):
    raise RuntimeError("planned failure")


def fail_first_try(**context):
    if context["ti"].try_number == 1:
        raise RuntimeError("planned failure of the first try")


with DAG("always_first", schedule=None, start_date=START):
    # `always` is ready at once; with the higher priority it runs before the short circuit that would skip it.
    sc = ShortCircuitOperator(task_id="sc", python_callable=lambda: False, weight_rule="absolute")
    sc >> PythonOperator(
        task_id="t", python_callable=work, trigger_rule="always", priority_weight=10, weight_rule="absolute"
    )

with DAG("settled_together", schedule=None, start_date=START):
    t0 = PythonOperator(task_id="t0", python_callable=fail)
    t1 = PythonOperator(task_id="t1", python_callable=work, trigger_rule="all_skipped")
    t2 = PythonOperator(task_id="t2", python_callable=work)
    t3 = PythonOperator(task_id="t3", python_callable=work)
    t0 >> [t1, t2] >> t3

with DAG("by_priority", schedule=None, start_date=START):
    PythonOperator(task_id="low", python_callable=work, weight_rule="absolute")
    PythonOperator(task_id="high", python_callable=work, priority_weight=5, weight_rule="absolute")

with DAG("skip_waiting_retry", schedule=None, start_date=START):
    # `t` runs first (always, high priority), fails and waits 1 s for its retry; meanwhile the branch, which
    # follows nothing, skips it.
    gate = PythonOperator(task_id="gate", python_callable=work, weight_rule="absolute")
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: [], weight_rule="absolute")
    t = PythonOperator(
        task_id="t",
        python_callable=fail_first_try,
        trigger_rule="always",
        retries=1,
        retry_delay=1,
        priority_weight=10,
        weight_rule="absolute",
    )
    gate >> branch >> t
"""

EXPECTED = {
    "always_first": {"sc": "success", "t": "success"},
    "settled_together": {"t0": "failed", "t1": "skipped", "t2": "upstream_failed", "t3": "upstream_failed"},
    "by_priority": {"low": "success", "high": "success"},
    "skip_waiting_retry": {"gate": "success", "branch": "success", "t": "skipped"},
}
#: Tasks that must have had a try before they ended as EXPECTED says (they ran before being skipped).
TRIED = {"always_first": {"t": 1}, "skip_waiting_retry": {"t": 1}}


def _write(home: Path) -> Path:
    path = home / "dags" / "engine_cases.py"
    path.write_text(DAGS, encoding="utf-8")
    return path


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dags_test_reaches_airflows_states(zonda_home: Path, monkeypatch: pytest.MonkeyPatch, dag_id: str) -> None:
    from zonda.dagbag import DagBag
    from zonda.testing import run_dag

    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    (zonda_home / "dags").mkdir()
    bag = DagBag(None)
    bag.process_file(_write(zonda_home))
    assert not bag.import_errors, bag.import_errors
    result = run_dag(bag.dags[dag_id])
    assert result.states() == EXPECTED[dag_id]
    if dag_id == "by_priority":
        assert result.ti("high").start_date < result.ti("low").start_date
    for task_id, tries in TRIED.get(dag_id, {}).items():
        assert result.ti(task_id).try_number == tries


def test_the_scheduler_reaches_the_same_states(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        _write(zonda_home)
        h.store_dags(settings, metastore)
        runs = {dag_id: int(trigger_dag(metastore.engine, dag_id)["id"]) for dag_id in EXPECTED}
        scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
        h.drive(scheduler, runs.values(), timeout=60)
        states = {dag_id: h.states_by_task(metastore.engine, run_id) for dag_id, run_id in runs.items()}
        tries = {
            dag_id: {row.task_id: row.try_number for row in h.task_instances(metastore.engine, run_id)}
            for dag_id, run_id in runs.items()
        }
    finally:
        metastore.dispose()
    assert states == EXPECTED
    for dag_id, expected in TRIED.items():
        assert {task_id: tries[dag_id][task_id] for task_id in expected} == expected
