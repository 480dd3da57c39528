"""``max_active_tis_per_dag`` and ``max_active_tis_per_dagrun``: the scheduler queues no more of a task's
instances than its limits allow (over all runs, and within one run), as Airflow does, and ``zonda tasks why``
names the limit that holds the others back.

The executor keeps what it is handed and runs nothing (``KeepingExecutor``), so what the scheduler queued stays
queued: the counts below are exact, not a sample of a race.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.exceptions import DagDefinitionError

LIMITED = """
from datetime import datetime

from zonda import DAG
from zonda.operators import EmptyOperator, PythonOperator


def noop(x):
    return x


with DAG("limited", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator.partial(task_id="per_dag", python_callable=noop, max_active_tis_per_dag=2).expand(
        op_kwargs=[{"x": i} for i in range(5)]
    )
    PythonOperator.partial(task_id="per_run", python_callable=noop, max_active_tis_per_dagrun=1).expand(
        op_kwargs=[{"x": i} for i in range(3)]
    )
    EmptyOperator(task_id="free")
"""


def test_the_scheduler_queues_within_each_tasks_limits(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.operations.why import MAX_ACTIVE_TIS_PER_DAG, MAX_ACTIVE_TIS_PER_DAGRUN, why
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        h.write_dag(zonda_home, "limited.py", LIMITED)
        h.store_dags(settings, metastore)
        from zonda.scheduler.runs import trigger_dag

        runs = [int(trigger_dag(metastore.engine, "limited", run_id=f"r{i}")["id"]) for i in (1, 2)]
        scheduler = Scheduler(settings, executor=h.KeepingExecutor(parallelism=32), metastore=metastore)
        scheduler.start()
        try:
            for _ in range(4):  # create the instances, expand, schedule, queue; later passes change nothing
                scheduler.run_once()
            rows = [row for run in runs for row in h.task_instances(metastore.engine, run)]
            waiting = {row.task_id: row for row in rows if row.state == "scheduled"}
            # Asked while the scheduler is alive: only the task's own limit holds these back.
            reports = {
                task_id: why(metastore.engine, settings, "limited", task_id, row.run_id, row.map_index)
                for task_id, row in waiting.items()
            }
        finally:
            scheduler.shutdown()
        queued: dict[str, list[str]] = {}
        for row in rows:
            if row.state == "queued":
                queued.setdefault(row.task_id, []).append(row.run_id)
        assert len(queued["per_dag"]) == 2  # over both runs
        assert sorted(queued["per_run"]) == ["r1", "r2"]  # one in each run
        assert sorted(queued["free"]) == ["r1", "r2"]
    finally:
        metastore.dispose()
    assert sorted(reports) == ["per_dag", "per_run"]
    assert reports["per_dag"].codes == [MAX_ACTIVE_TIS_PER_DAG]
    assert "2 instance(s) queued or running over all runs" in reports["per_dag"].blockers[0].message
    assert "max_active_tis_per_dag is 2" in reports["per_dag"].blockers[0].message
    assert reports["per_run"].codes == [MAX_ACTIVE_TIS_PER_DAGRUN]
    assert "1 instance(s) queued or running in this run" in reports["per_run"].blockers[0].message


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_a_limit_must_be_a_positive_integer(value: object) -> None:
    from zonda import DAG
    from zonda.operators import EmptyOperator

    with DAG("bad_limit"), pytest.raises(DagDefinitionError, match="max_active_tis_per_dag must be a positive"):
        EmptyOperator(task_id="t", max_active_tis_per_dag=value)
