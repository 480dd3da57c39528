"""Setup and teardown tasks end in the states Airflow 3.3 gives them, in ``dags test`` and in the scheduler.

EXPECTED holds the final task and run states Apache Airflow 3.3.2 reached for the same DAGs (``airflow dags test``
on the Airflow version of ``DAGS``, run side by side while this was written): a teardown runs when its setup
succeeded whatever the work did, its failure does not fail the run unless ``on_failure_fail_dagrun=True``, a failed
or skipped setup settles the work and the teardown, and an indirect setup settles a task below it even when the
task's own trigger rule would let it run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.exceptions import DagDefinitionError
from zonda.trigger_rule import TriggerRule

DAGS = """
from datetime import datetime

from zonda import DAG, setup, task, teardown
from zonda.exceptions import ZondaSkipException
from zonda.operators import PythonOperator


def ok():
    return 1


def boom():
    raise RuntimeError("boom")


def skip():
    raise ZondaSkipException("skip")


FN = {"ok": ok, "boom": boom, "skip": skip}


def build(dag_id, s, w, t, fail_run=False):
    with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1)) as d:
        setup_task = PythonOperator(task_id="s", python_callable=FN[s])
        w1 = PythonOperator(task_id="w1", python_callable=FN[w])
        w2 = PythonOperator(task_id="w2", python_callable=ok)
        teardown_task = PythonOperator(task_id="t", python_callable=FN[t])
        setup_task >> w1 >> w2 >> teardown_task
        teardown_task.as_teardown(setups=setup_task, on_failure_fail_dagrun=fail_run)
    return d


CASES = {
    "st_work_fails": ("ok", "boom", "ok", False),
    "st_setup_fails": ("boom", "ok", "ok", False),
    "st_teardown_fails": ("ok", "ok", "boom", False),
    "st_teardown_fails_run": ("ok", "ok", "boom", True),
    "st_setup_skips": ("skip", "ok", "ok", False),
}
for name, args in CASES.items():
    globals()[name] = build(name, *args)

with DAG("st_indirect", schedule=None, start_date=datetime(2024, 1, 1)) as st_indirect:
    s = PythonOperator(task_id="s", python_callable=boom).as_setup()
    w1 = PythonOperator(task_id="w1", python_callable=ok)
    w2 = PythonOperator(task_id="w2", python_callable=ok, trigger_rule="all_done")
    s >> w1 >> w2

with DAG("st_decorators", schedule=None, start_date=datetime(2024, 1, 1)) as st_decorators:

    @setup
    def make():
        return "res"

    @task
    def work(r):
        raise RuntimeError("x")

    @teardown
    def drop(r):
        return None

    r = make()
    work(r) >> drop(r)
"""

#: dag id -> (run state, task states), as Airflow 3.3.2 ended them.
EXPECTED = {
    "st_work_fails": ("failed", {"s": "success", "w1": "failed", "w2": "upstream_failed", "t": "success"}),
    "st_setup_fails": (
        "failed",
        {"s": "failed", "w1": "upstream_failed", "w2": "upstream_failed", "t": "upstream_failed"},
    ),
    "st_teardown_fails": ("success", {"s": "success", "w1": "success", "w2": "success", "t": "failed"}),
    "st_teardown_fails_run": ("failed", {"s": "success", "w1": "success", "w2": "success", "t": "failed"}),
    "st_setup_skips": ("success", {"s": "skipped", "w1": "skipped", "w2": "skipped", "t": "skipped"}),
    "st_indirect": ("failed", {"s": "failed", "w1": "upstream_failed", "w2": "upstream_failed"}),
    "st_decorators": ("failed", {"make": "success", "work": "failed", "drop": "success"}),
}


def _bag(home: Path):
    (home / "dags").mkdir(exist_ok=True)
    path = home / "dags" / "setup_teardown_cases.py"
    path.write_text(DAGS, encoding="utf-8")
    return h.load_dag_file(path)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dags_test_reaches_airflows_states(zonda_home: Path, dag_id: str) -> None:
    from zonda.testing import run_dag

    result = run_dag(_bag(zonda_home).dags[dag_id])
    assert (result.state, result.states()) == EXPECTED[dag_id]


def test_the_scheduler_reaches_the_same_states(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        _bag(zonda_home)
        assert h.scheduled_outcomes(settings, metastore, EXPECTED) == EXPECTED
    finally:
        metastore.dispose()


def test_authoring_marks_roles_and_wires_setups(zonda_home: Path) -> None:
    bag = _bag(zonda_home)
    dag = bag.dags["st_work_fails"]
    setup_task, teardown_task = dag.task_dict["s"], dag.task_dict["t"]
    assert setup_task.is_setup and not setup_task.is_teardown
    assert teardown_task.is_teardown and teardown_task.trigger_rule is TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert teardown_task.upstream_task_ids == {"w2", "s"} and not teardown_task.on_failure_fail_dagrun
    assert bag.dags["st_teardown_fails_run"].task_dict["t"].on_failure_fail_dagrun
    decorated = bag.dags["st_decorators"].task_dict
    assert decorated["make"].is_setup and decorated["drop"].is_teardown
    assert decorated["drop"].upstream_task_ids == {"make", "work"}


def test_a_task_cannot_be_both_setup_and_teardown() -> None:
    from zonda import DAG
    from zonda.operators import EmptyOperator

    with DAG("both"):
        one = EmptyOperator(task_id="one").as_setup()
        with pytest.raises(DagDefinitionError, match="'one' is a setup and cannot also be a teardown"):
            one.as_teardown()


def test_roles_reach_the_serialized_dag_and_plain_dags_are_unchanged(zonda_home: Path) -> None:
    from zonda.scheduler.serialized import SerializedDag
    from zonda.serialization import serialize_dag

    bag = _bag(zonda_home)
    sdag = SerializedDag.from_json(serialize_dag(bag.dags["st_teardown_fails_run"])[0])
    assert sdag.tasks["s"].is_setup and sdag.tasks["t"].is_teardown and sdag.tasks["t"].on_failure_fail_dagrun
    assert sdag.shape.leaves == ["t"]  # a teardown that fails the run is a leaf
    plain = serialize_dag(bag.dags["st_indirect"])[0]
    assert '"is_teardown"' not in plain and '"on_failure_fail_dagrun"' not in plain


def test_clearing_a_work_task_clears_its_setups_and_teardowns(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's ``partial_subset``: a work task brings its relevant setups and their teardowns (the resource is
    made again and removed again); a setup brings its teardowns; a teardown comes alone."""
    from zonda.operations.task_instances import Selection, clear_task_instances
    from zonda.testing import run_dag

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        result = run_dag(_bag(zonda_home).dags["st_work_fails"], metastore=metastore, settings=settings)
        engine = metastore.engine

        def picked(**options) -> set[str]:
            outcome = clear_task_instances(engine, Selection("st_work_fails", **options), dry_run=True)
            return {row.task_id for row in outcome.instances}

        assert picked(task_ids=["w1"]) == {"s", "w1", "t"}
        assert picked(task_ids=["w1"], downstream=True) == {"s", "w1", "w2", "t"}
        assert picked(task_ids=["w2"], upstream=True) == {"s", "w1", "w2", "t"}
        assert picked(task_ids=["s"]) == {"s", "t"}
        assert picked(task_ids=["t"]) == {"t"}
        assert picked(task_ids=["w1"], only_failed=True) == {"w1"}  # only_failed still filters the additions

        outcome = clear_task_instances(engine, Selection("st_work_fails", task_ids=["w1"]))
        assert outcome.changed == 3
        states = h.states_by_task(engine, result.run.id)
    finally:
        metastore.dispose()
    assert states == {"s": None, "w1": None, "w2": "upstream_failed", "t": None}


def test_tasks_made_inside_a_setup_or_teardown_block_go_between_the_pair() -> None:
    """``with teardown.as_teardown(setups=setup):`` (and ``with setup_task >> teardown_task:``), as in Airflow."""
    from zonda import DAG
    from zonda.operators import EmptyOperator

    with DAG("blocks") as dag:
        make, drop = EmptyOperator(task_id="make"), EmptyOperator(task_id="drop")
        with drop.as_teardown(setups=make):
            first = EmptyOperator(task_id="first")
            first >> EmptyOperator(task_id="second")
            EmptyOperator(task_id="alone")
        begin = EmptyOperator(task_id="begin").as_setup()
        end = EmptyOperator(task_id="end").as_teardown()
        with begin >> end:
            EmptyOperator(task_id="inner")
        with begin:
            EmptyOperator(task_id="setup_only")
        plain = EmptyOperator(task_id="plain")
        with pytest.raises(DagDefinitionError, match="neither a setup nor a teardown"), plain:
            pass
    tasks = dag.task_dict
    assert tasks["make"].downstream_task_ids == {"first", "alone", "drop"}
    assert tasks["drop"].upstream_task_ids == {"make", "second", "alone"}
    assert tasks["inner"].upstream_task_ids == {"begin"} and tasks["inner"].downstream_task_ids == {"end"}
    assert tasks["setup_only"].upstream_task_ids == {"begin"} and tasks["setup_only"].downstream_task_ids == {"end"}


SCOPE = """
from datetime import datetime

from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("st_scope", schedule=None, start_date=datetime(2024, 1, 1)):
    s = EmptyOperator(task_id="s")
    w1 = EmptyOperator(task_id="w1")
    w2 = EmptyOperator(task_id="w2", trigger_rule="always")
    t = EmptyOperator(task_id="t")
    s >> w1 >> w2 >> t
    t.as_teardown(setups=s)
"""


def test_a_teardown_waits_for_its_whole_scope_and_tasks_why_says_so(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its direct upstream (s, w2) done is not enough: w1, between its setup and it, must end too (Airflow's
    teardown scope). The executor runs nothing; states are set through the operations layer, as a user marks."""
    from zonda.operations.task_instances import Selection, mark_task_instances
    from zonda.operations.why import TRIGGER_RULE, why
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        h.write_dag(zonda_home, "scope.py", SCOPE)
        h.store_dags(settings, metastore)
        run = trigger_dag(metastore.engine, "st_scope", run_id="r1")
        first = Scheduler(settings, executor=h.KeepingExecutor(), metastore=metastore)
        first.start()
        try:
            first.run_once()
        finally:
            first.shutdown()
        mark_task_instances(metastore.engine, Selection("st_scope", task_ids=["s", "w2"]), "success")
        # A scheduler starting now decides the whole run again, from the marked states.
        scheduler = Scheduler(settings, executor=h.KeepingExecutor(), metastore=metastore)
        scheduler.start()
        try:
            for _ in range(2):
                scheduler.run_once()
            states = h.states_by_task(metastore.engine, int(run["id"]))
            report = why(metastore.engine, settings, "st_scope", "t", "r1")
        finally:
            scheduler.shutdown()
    finally:
        metastore.dispose()
    assert states["t"] is None and states["w1"] in ("scheduled", "queued")
    assert report.codes == [TRIGGER_RULE] and "w1" in report.blockers[0].message
