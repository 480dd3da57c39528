"""A run with known times for the Gantt and task instance tests: DAG ``gantt`` (a >> b >> c, a >> d) where b
failed once and retried, c deferred and resumed, d ran beside b. Rows are written as the transitions would have
left them (fixed times, so the expected bars are exact)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from zonda.metastore import tables as t

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUN_ID = "manual__2026-01-01"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seed_gantt_run(engine: Any, dag_id: str = "gantt", *, c_state: str = "success") -> int:
    """Insert the DAG, its serialized form, a run and its instances and history; returns the run's id."""
    from zonda import DAG
    from zonda.operators import BashOperator
    from zonda.serialization import serialize_dag

    with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        a = BashOperator(task_id="a", bash_command="echo a")
        b = BashOperator(task_id="b", bash_command="echo b", retries=1)
        c = BashOperator(task_id="c", bash_command="echo c")
        d = BashOperator(task_id="d", bash_command="echo d")
        a >> b >> c
        a >> d
    data, digest = serialize_dag(dag)
    with engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id=dag_id, is_paused=False, is_active=True, fileloc="x.py"))
        conn.execute(t.serialized_dag.insert().values(dag_id=dag_id, data=data, dag_hash=digest, fileloc="x.py"))
        run_id = conn.execute(
            t.dag_run.insert().values(
                dag_id=dag_id, run_id=RUN_ID, run_type="manual", state="running", start_date=at(0), logical_date=T0
            )
        ).inserted_primary_key[0]

        def ti(task_id: str, state: str | None, try_number: int, q: float, s: float, r: float, e: float | None) -> int:
            return conn.execute(
                t.task_instance.insert().values(
                    dag_run_id=run_id,
                    dag_id=dag_id,
                    run_id=RUN_ID,
                    task_id=task_id,
                    map_index=-1,
                    state=state,
                    try_number=try_number,
                    max_tries=1,
                    queued_dttm=at(q),
                    start_date=at(s),
                    running_since=at(r),
                    end_date=None if e is None else at(e),
                    operator="BashOperator",
                )
            ).inserted_primary_key[0]

        def history(ti_id: int, task_id: str, try_number: int, state: str, q: float, s: float, r: float, e: float):
            conn.execute(
                t.task_instance_history.insert().values(
                    dag_run_id=run_id,
                    task_instance_id=ti_id,
                    task_id=task_id,
                    map_index=-1,
                    try_number=try_number,
                    state=state,
                    queued_dttm=at(q),
                    start_date=at(s),
                    running_since=at(r),
                    end_date=at(e),
                )
            )

        a_id = ti("a", "success", 1, 0, 1, 1, 10)
        history(a_id, "a", 1, "success", 0, 1, 1, 10)
        b_id = ti("b", "success", 2, 25, 26, 26, 40)
        history(b_id, "b", 1, "up_for_retry", 10, 11, 11, 20)
        history(b_id, "b", 2, "success", 25, 26, 26, 40)
        c_end = 70 if c_state == "success" else None
        c_id = ti("c", c_state, 1, 60, 41, 61, c_end)
        history(c_id, "c", 1, "deferred", 40, 41, 41, 45)
        if c_state == "success":
            history(c_id, "c", 1, "success", 60, 41, 61, 70)
        d_id = ti("d", "success", 1, 10, 11, 11, 30)
        history(d_id, "d", 1, "success", 10, 11, 11, 30)
    return int(run_id)


def add_xcom(engine: Any, run_id: int, task_id: str, value: Any, dag_id: str = "gantt") -> None:
    """Store ``value`` (JSON) as ``task_id``'s return value in the seeded run (its primary key ``run_id``)."""
    import json

    with engine.begin() as conn:
        conn.execute(
            t.xcom.insert().values(
                dag_run_id=run_id,
                task_id=task_id,
                map_index=-1,
                key="return_value",
                dag_id=dag_id,
                run_id=RUN_ID,
                value=json.dumps(value),
            )
        )
