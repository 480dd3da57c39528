"""Reading task instances: the instances of a run (``states-for-dag-run``), one instance, and listings with
filters. Nothing here changes a state (that is :mod:`zonda.operations.task_instances` and the transitions).

Called by ``zonda tasks states-for-dag-run``, :mod:`zonda.operations.why`, and the web server's grid and API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from zonda.exceptions import NotFound
from zonda.metastore import tables as t
from zonda.operations.dag_runs import find_run


@dataclass(frozen=True)
class TaskInstanceRecord:
    """One task instance (one map index of one task in one run), in the state it was read."""

    id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    #: None: not decided yet ("none").
    state: str | None
    try_number: int
    max_tries: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    operator: str | None
    pool: str
    pool_slots: int
    queue: str | None
    priority_weight: int | None
    hostname: str | None
    pid: int | None
    queued_dttm: datetime | None
    #: When an up_for_retry / up_for_reschedule instance may run again.
    ready_at: datetime | None
    dag_run_id: int
    #: A mapped instance's readable name (its ``map_index_template``, rendered when it ran), or None.
    rendered_map_index: str | None = None
    #: The task's ``task_display_name``, or its id.
    task_display_name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.dag_id}.{self.task_id}" + (f"[{self.map_index}]" if self.map_index >= 0 else "")

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


#: The columns :func:`record` reads: a listing selects these, not the wide text columns (rendered fields, executor
#: config) it would throw away.
RECORD_COLUMNS = tuple(t.task_instance.c[name] for name in TaskInstanceRecord.__dataclass_fields__)


def record(row: Any) -> TaskInstanceRecord:
    return TaskInstanceRecord(
        id=row.id,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        state=row.state,
        try_number=row.try_number or 0,
        max_tries=row.max_tries or 0,
        start_date=row.start_date,
        end_date=row.end_date,
        duration=row.duration,
        operator=row.operator,
        pool=row.pool,
        pool_slots=row.pool_slots,
        queue=row.queue,
        priority_weight=row.priority_weight,
        hostname=row.hostname,
        pid=row.pid,
        queued_dttm=row.queued_dttm,
        ready_at=row.ready_at,
        dag_run_id=row.dag_run_id,
        rendered_map_index=row.rendered_map_index,
        task_display_name=row.task_display_name or row.task_id,
    )


def _task_order(conn: Any, dag_id: str) -> dict[str, int]:
    from zonda.scheduler.serialized import SerializedDag

    data = conn.execute(select(t.serialized_dag.c.data).where(t.serialized_dag.c.dag_id == dag_id)).scalar()
    return {task_id: i for i, task_id in enumerate(SerializedDag.from_json(data).order)} if data else {}


def states_for_dag_run(engine: Any, dag_id: str, run_id: str) -> list[TaskInstanceRecord]:
    """Every instance of the run, in the DAG's dependency order then by map index (empty while the run has not
    started: the scheduler creates them when it starts it). NotFound for an unknown DAG or run."""
    ti = t.task_instance
    with engine.connect() as conn:
        run = find_run(conn, dag_id, run_id)
        rows = conn.execute(select(ti).where(ti.c.dag_run_id == run.id)).all()
        order = _task_order(conn, dag_id)
    rows = sorted(rows, key=lambda r: (order.get(r.task_id, len(order)), r.task_id, r.map_index))
    return [record(r) for r in rows]


def get_task_instance(engine: Any, dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> TaskInstanceRecord:
    """One instance; NotFound names the map indexes the task has in that run when ``map_index`` is not one."""
    ti = t.task_instance
    with engine.connect() as conn:
        run = find_run(conn, dag_id, run_id)
        rows = conn.execute(select(ti).where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id)).all()
    row = next((r for r in rows if r.map_index == map_index), None)
    if row is None:
        label = f"{dag_id}.{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
        indexes = ", ".join(str(r.map_index) for r in sorted(rows, key=lambda r: r.map_index))
        raise NotFound(
            f"run {run_id!r} has no instance {label}; "
            + (f"its map indexes are {indexes}: pass one of them" if indexes else "the task has no instance there yet")
        )
    return record(row)


def list_task_instances(
    engine: Any,
    dag_id: str,
    *,
    run_id: str | None = None,
    task_ids: Iterable[str] | None = None,
    states: Iterable[str | None] | None = None,
    limit: int | None = None,
) -> list[TaskInstanceRecord]:
    """A DAG's instances, newest run first, filtered by run, tasks and states (``None`` in ``states`` matches
    instances not decided yet)."""
    from sqlalchemy import or_

    ti, dr = t.task_instance, t.dag_run
    query = select(ti).join(dr, dr.c.id == ti.c.dag_run_id).where(ti.c.dag_id == dag_id)
    if run_id is not None:
        query = query.where(ti.c.run_id == run_id)
    if task_ids is not None:
        query = query.where(ti.c.task_id.in_(sorted(set(task_ids))))
    if states is not None:
        states = list(states)
        wanted = [s for s in states if s not in (None, "none")]
        none_too = any(s in (None, "none") for s in states)
        clauses = [ti.c.state.in_(wanted)] if wanted else []
        if none_too:
            clauses.append(ti.c.state.is_(None))
        query = query.where(or_(*clauses)) if clauses else query.where(ti.c.id.is_(None))
    query = query.order_by(dr.c.logical_date.desc(), dr.c.id.desc(), ti.c.task_id, ti.c.map_index)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        if not rows:
            from zonda.operations.dags import require_dag

            require_dag(conn, dag_id)
    return [record(r) for r in rows]
