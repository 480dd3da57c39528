"""Running one task instance of an existing run in the calling process (``zonda tasks run``), as a worker does.

:func:`prepare_manual_run` checks the instance can run, queues it and returns the workload; the caller runs it
(:class:`~zonda.executors.workload.WorkloadRunner`) and reads the outcome with :func:`instance_outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from zonda.exceptions import Conflict, NotFound, TaskNotFound
from zonda.metastore import tables as t
from zonda.operations.dag_runs import find_run

if TYPE_CHECKING:
    from zonda.executors.base import Workload

#: States ``tasks run`` queues an instance from; others are refused (clear it first).
RUNNABLE_STATES = (None, "none", "scheduled", "queued", "up_for_retry", "up_for_reschedule")


@dataclass(frozen=True)
class InstanceOutcome:
    state: str | None
    try_number: int


def prepare_manual_run(engine: Any, dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> Workload:
    """Queue the instance for this process and return its workload. The run's instances are created first when
    the scheduler has not started the run yet. Refused (:class:`~zonda.exceptions.Conflict`) for an instance
    that is running or finished (clear it first)."""
    from zonda.executors.base import Workload
    from zonda.identifiers import validate_run_id
    from zonda.scheduler.decisions import create_task_instances
    from zonda.scheduler.runs import load_serialized
    from zonda.suggestions import unknown_name
    from zonda.timezone import utcnow

    validate_run_id(run_id)
    ti = t.task_instance
    label = f"{dag_id}.{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
    with engine.begin() as conn:
        sdag = load_serialized(conn, dag_id)
        if task_id not in sdag.tasks:
            raise TaskNotFound(
                unknown_name(
                    f"DAG {dag_id!r} has no task {task_id!r}",
                    task_id,
                    sdag.tasks,
                    f"`zonda tasks list {dag_id}` lists them",
                )
            )
        run = find_run(conn, dag_id, run_id)
        if conn.execute(select(ti.c.id).where(ti.c.dag_run_id == run.id).limit(1)).first() is None:
            create_task_instances(conn, sdag, run)  # what the scheduler does when it starts the run
        row = conn.execute(
            select(ti).where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id, ti.c.map_index == map_index)
        ).first()
        if row is None:
            indexes = [
                r[0]
                for r in conn.execute(
                    select(ti.c.map_index)
                    .where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id)
                    .order_by(ti.c.map_index)
                )
            ]
            raise NotFound(
                f"run {run_id!r} has no instance {label}; its map indexes are "
                f"{', '.join(map(str, indexes)) or 'none yet'}: pass one with --map-index"
            )
        if row.state not in RUNNABLE_STATES:
            if row.state == "running":
                raise Conflict(f"{label} is already running in run {run_id!r} (pid {row.pid})")
            raise Conflict(
                f"{label} is {row.state} in run {run_id!r}; clear it first: zonda tasks clear {dag_id} "
                f"--task-regex '^{task_id}$' --run-id {run_id} --yes"
            )
        if row.state != "queued":
            from zonda.operations import transitions

            seen = transitions.as_ti_state(row.state)
            if not transitions.queue_ti_by_hand(conn, row.id, seen=seen, now=utcnow()):
                raise Conflict(f"{label} changed state while it was being queued (a scheduler took it); try again")
        fileloc = conn.execute(select(t.serialized_dag.c.fileloc).where(t.serialized_dag.c.dag_id == dag_id)).scalar()
    return Workload(
        ti_id=row.id,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        # A task resuming from a deferral continues its try; anything else starts the next one.
        try_number=(row.try_number or 0) + (0 if row.next_method else 1),
        fileloc=fileloc or sdag.fileloc,
        queue=row.queue or "default",
        priority=row.priority_weight or 1,
        dag_run_id=run.id,
    )


def instance_outcome(engine: Any, ti_id: int) -> InstanceOutcome:
    """The instance's state and try number now (after its try ran)."""
    ti = t.task_instance
    with engine.connect() as conn:
        row = conn.execute(select(ti.c.state, ti.c.try_number).where(ti.c.id == ti_id)).first()
    if row is None:
        raise NotFound(f"task instance {ti_id} is gone (its DAG's history was deleted meanwhile)")
    return InstanceOutcome(row.state, int(row.try_number or 0))
