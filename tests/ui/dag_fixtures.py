"""DAGs, runs and task instances for the web server's DAG pages, written straight into a metastore.

The DAGs are built in process and stored as the DAG processor stores them (``serialized_dag`` and ``dag`` rows);
runs and task instances are bulk-inserted with the states a test wants, so a grid of 1,000 tasks x 25 runs or
5,000 runs takes a second, not a scheduler's afternoon. Shared by tests/ui and bench/bench_web_*.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from zonda.metastore import tables as t

START = datetime(2025, 1, 1, tzinfo=UTC)


def store_dag(metastore: Any, dag: Any, *, paused: bool = False) -> None:
    """Store ``dag`` (a DAG object) the way the DAG processor does. Unpaused unless ``paused``: the pages show
    DAGs a user has already switched on (a new DAG starting paused has its own tests in tests/core)."""
    from zonda.runner.store import MetastoreRunStore

    MetastoreRunStore(metastore).sync_dag(dag, paused_at_creation=paused)


def wide_dag(dag_id: str, tasks: int, *, group_size: int = 0, mapped_every: int = 0, **dag_args: Any) -> Any:
    """A chain-free DAG of ``tasks`` tasks; every ``group_size`` of them in a task group (0: no groups), every
    ``mapped_every``-th one a mapped task (0: none)."""
    from zonda import DAG, TaskGroup
    from zonda.operators import EmptyOperator, PythonOperator

    def noop(x: int = 0) -> None:
        return None

    with DAG(dag_id, schedule=None, start_date=START, **dag_args) as dag:
        group = None
        for index in range(tasks):
            if group_size and index % group_size == 0:
                group = TaskGroup(f"group_{index // group_size}", dag=dag, parent_group=None)
            task_id = f"task_{index:04d}"
            if mapped_every and index % mapped_every == mapped_every - 1:
                PythonOperator.partial(task_id=task_id, python_callable=noop, task_group=group).expand(
                    op_args=[[1], [2], [3]]
                )
            else:
                EmptyOperator(task_id=task_id, task_group=group)
    return dag


def add_runs(
    engine: Any,
    dag_id: str,
    count: int,
    *,
    task_ids: Sequence[str] = (),
    state_of: Callable[[int, str], Sequence[str | None]] = lambda run, task: ("success",),
    first_id: int = 0,
) -> list[str]:
    """``count`` runs a day apart (run 0 the oldest), each with instances of ``task_ids`` whose states
    ``state_of(run index, task id)`` gives, one per map index (one state: an unmapped instance). Returns the
    run ids, oldest first."""
    run_ids = [f"scheduled__{(START + timedelta(days=first_id + i)).date().isoformat()}" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(
            t.dag_run.insert(),
            [
                {
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "logical_date": START + timedelta(days=first_id + i),
                    "run_type": "scheduled",
                    "state": "success",
                }
                for i, run_id in enumerate(run_ids)
            ],
        )
        if not task_ids:
            return run_ids
        keys = dict(
            conn.execute(
                t.dag_run.select()
                .with_only_columns(t.dag_run.c.run_id, t.dag_run.c.id)
                .where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.run_id.in_(run_ids))
            ).all()
        )
        rows = []
        for i, run_id in enumerate(run_ids):
            for task_id in task_ids:
                states = state_of(i, task_id)
                for map_index, state in enumerate(states):
                    rows.append(
                        {
                            "dag_run_id": keys[run_id],
                            "dag_id": dag_id,
                            "run_id": run_id,
                            "task_id": task_id,
                            "map_index": map_index if len(states) > 1 else -1,
                            "state": state,
                            "try_number": 1,
                        }
                    )
        for start in range(0, len(rows), 5000):
            conn.execute(t.task_instance.insert(), rows[start : start + 5000])
    return run_ids


def grouped_dag(dag_id: str) -> Any:
    """start >> [work.one, work.two] >> end, the middle two in the task group ``work``."""
    from zonda import DAG, TaskGroup
    from zonda.operators import EmptyOperator

    with DAG(dag_id, schedule=None, start_date=START) as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("work"):
            one = EmptyOperator(task_id="one")
            two = EmptyOperator(task_id="two")
        end = EmptyOperator(task_id="end")
        start >> [one, two] >> end
    return dag
