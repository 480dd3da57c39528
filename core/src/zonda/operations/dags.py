"""DAGs as the metastore knows them: listing with paused state, schedule, next run and recent run states; pause
and unpause; deleting a DAG's history; what the processor recorded about them.

Called by ``zonda dags list-runs | pause | unpause | delete | list-import-errors``, by the DAG-file loading of
the CLI (which file holds a DAG id), and by the web server's DAG list. Nothing here imports a DAG file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from zonda import serde
from zonda.exceptions import Conflict
from zonda.metastore import tables as t
from zonda.operations.dag_grants import visible_dags_clause
from zonda.scheduler.runs import load_serialized, unknown_dag
from zonda.scheduler.serialized import SerializedDag
from zonda.state import ACTIVE_STATES, TaskInstanceState, sql_values

#: Task-instance states whose process or trigger is alive: a DAG with such instances is not deleted.
_EXECUTING = sql_values((*ACTIVE_STATES, TaskInstanceState.DEFERRED))


@dataclass(frozen=True)
class DagRecord:
    """One stored DAG, as the DAG list shows it."""

    dag_id: str
    fileloc: str | None
    is_paused: bool
    is_active: bool
    description: str | None
    #: The schedule in words (``At 00:00``, ``@daily``...), as the processor described it.
    schedule: str | None
    tags: tuple[str, ...]
    owners: str | None
    next_dagrun: datetime | None
    has_import_errors: bool
    #: Why the scheduler cannot create or decide its runs; None when fine.
    scheduling_error: str | None
    #: States of the newest runs, newest first (at most the ``recent`` asked for).
    recent_run_states: tuple[str, ...] = ()
    #: ``dag_display_name``, or the id.
    dag_display_name: str | None = None


@dataclass(frozen=True)
class DagDeletion:
    """What :func:`delete_dag` removed."""

    dag_id: str
    dag_runs: int
    task_instances: int


@dataclass(frozen=True)
class SchedulingProblem:
    """An active DAG the scheduler reported it cannot schedule (``dag.scheduling_error``)."""

    dag_id: str
    fileloc: str
    error: str


def _tags(raw: Any) -> tuple[str, ...]:
    if not raw:
        return ()
    try:
        value = serde.loads(raw) if isinstance(raw, str) else raw
    except Exception:  # tags written by an older version: shown as stored rather than failing the list
        return (str(raw),)
    return tuple(str(tag) for tag in value) if isinstance(value, list | tuple) else (str(value),)


def dag_record(row: Any, recent: tuple[str, ...] = ()) -> DagRecord:
    return DagRecord(
        dag_id=row.dag_id,
        fileloc=row.fileloc,
        is_paused=bool(row.is_paused),
        is_active=bool(row.is_active),
        description=row.description,
        schedule=row.timetable_description or row.schedule,
        tags=_tags(row.tags),
        owners=row.owners,
        next_dagrun=row.next_dagrun,
        has_import_errors=bool(row.has_import_errors),
        scheduling_error=row.scheduling_error,
        recent_run_states=recent,
        dag_display_name=getattr(row, "dag_display_name", None) or row.dag_id,
    )


def _recent_states(conn: Any, dag_ids: list[str], recent: int, visible: Any = None) -> dict[str, tuple[str, ...]]:
    """The states of each DAG's ``recent`` newest runs, in one query per 500 DAGs (only runs ``visible``, a
    clause over ``dag_run``, keeps)."""
    if recent <= 0 or not dag_ids:
        return {}
    dr = t.dag_run
    newest = (
        func.row_number().over(partition_by=dr.c.dag_id, order_by=(dr.c.logical_date.desc(), dr.c.id.desc())).label("n")
    )
    found: dict[str, list[str]] = {}
    for start in range(0, len(dag_ids), 500):
        ranked = select(dr.c.dag_id, dr.c.state, newest).where(dr.c.dag_id.in_(dag_ids[start : start + 500]))
        if visible is not None:
            ranked = ranked.where(visible)
        ranked = ranked.subquery()
        rows = conn.execute(
            select(ranked.c.dag_id, ranked.c.state).where(ranked.c.n <= recent).order_by(ranked.c.dag_id, ranked.c.n)
        )
        for dag_id, state in rows:
            found.setdefault(dag_id, []).append(state)
    return {dag_id: tuple(states) for dag_id, states in found.items()}


def list_dags(
    engine: Any,
    *,
    include_inactive: bool = False,
    paused: bool | None = None,
    recent: int = 5,
    visible_to: Any = None,
) -> list[DagRecord]:
    """Every stored DAG by id: active ones (their file is still in the folder) unless ``include_inactive``;
    only paused or unpaused ones when ``paused`` is given; only those ``visible_to`` (a user) may see, when given
    (:func:`~zonda.operations.dag_grants.visible_dags_clause`); with the states of their ``recent`` newest runs."""
    query = select(t.dag).order_by(t.dag.c.dag_id)
    if visible_to is not None:
        query = query.where(visible_dags_clause(visible_to))
    if not include_inactive:
        query = query.where(t.dag.c.is_active.is_(True))
    if paused is not None:
        query = query.where(t.dag.c.is_paused.is_(paused))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        states = _recent_states(conn, [r.dag_id for r in rows], recent)
    return [dag_record(row, states.get(row.dag_id, ())) for row in rows]


def recent_run_states(
    engine: Any, dag_ids: list[str], *, recent: int = 5, visible_to: Any = None
) -> dict[str, tuple[str, ...]]:
    """The states of the ``recent`` newest runs of each of ``dag_ids`` (newest first; absent: no runs, or a DAG
    ``visible_to``, when given, may not see), for the DAGs page's live refresh of the DAGs whose runs changed."""
    visible = None if visible_to is None else visible_dags_clause(visible_to, t.dag_run.c.dag_id)
    with engine.connect() as conn:
        return _recent_states(conn, dag_ids, recent, visible)


def get_dag(engine: Any, dag_id: str, *, recent: int = 5) -> DagRecord:
    """One stored DAG; :class:`~zonda.exceptions.DagNotFound` (with the closest ids) when the metastore has none."""
    with engine.connect() as conn:
        row = require_dag(conn, dag_id)
        states = _recent_states(conn, [dag_id], recent)
    return dag_record(row, states.get(dag_id, ()))


def require_dag(conn: Any, dag_id: str) -> Any:
    """The ``dag`` row of ``dag_id`` inside a caller's transaction, or DagNotFound."""
    row = conn.execute(select(t.dag).where(t.dag.c.dag_id == dag_id)).first()
    if row is None:
        raise unknown_dag(conn, dag_id)
    return row


def serialized_dag(engine: Any, dag_id: str) -> SerializedDag:
    """The DAG as the processor stored it (tasks, dependencies, params): what the scheduler reads, no user code."""
    with engine.connect() as conn:
        return load_serialized(conn, dag_id)


def set_paused(engine: Any, dag_id: str, paused: bool) -> DagRecord:
    """Pause (the scheduler creates no runs and queues no task of it) or unpause a DAG.

    Called by ``zonda dags pause | unpause`` and the UI's toggle. Idempotent."""
    with engine.begin() as conn:
        result = conn.execute(update(t.dag).where(t.dag.c.dag_id == dag_id).values(is_paused=paused))
        if not result.rowcount:
            raise unknown_dag(conn, dag_id)
    return get_dag(engine, dag_id, recent=0)


def is_paused(engine: Any, dag_id: str) -> bool | None:
    """Whether the DAG is paused; None when the metastore does not know it (for warnings, never an error)."""
    with engine.connect() as conn:
        value = conn.execute(select(t.dag.c.is_paused).where(t.dag.c.dag_id == dag_id)).scalar()
    return None if value is None else bool(value)


def delete_dag(engine: Any, dag_id: str) -> DagDeletion:
    """Delete a DAG's history as Airflow's ``dags delete`` does: its runs with their task instances, XComs and
    pending callbacks, and its ``dag`` and serialized rows. A DAG file still in the folder brings the DAG back,
    without history, at its next parse.

    Refused (:class:`~zonda.exceptions.Conflict`) while any of its task instances is queued, running or
    deferred: their processes would write to rows that are gone. Called by ``zonda dags delete`` and the UI."""
    ti, dr = t.task_instance, t.dag_run
    with engine.begin() as conn:
        require_dag(conn, dag_id)
        busy = conn.execute(
            select(ti.c.run_id, ti.c.task_id, ti.c.state).where(ti.c.dag_id == dag_id, ti.c.state.in_(_EXECUTING))
        ).first()
        if busy is not None:
            raise Conflict(
                f"DAG {dag_id!r} has task instances in progress ({busy.task_id} in run {busy.run_id!r} is "
                f"{busy.state}); pause the DAG and wait for them to end, then delete it"
            )
        run_ids = [r[0] for r in conn.execute(select(dr.c.id).where(dr.c.dag_id == dag_id))]
        instances = 0
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            conn.execute(delete(t.xcom).where(t.xcom.c.dag_run_id.in_(chunk)))
            conn.execute(delete(t.callback_request).where(t.callback_request.c.dag_run_id.in_(chunk)))
            instances += conn.execute(delete(ti).where(ti.c.dag_run_id.in_(chunk))).rowcount or 0
            conn.execute(delete(dr).where(dr.c.id.in_(chunk)))
        conn.execute(delete(t.serialized_dag).where(t.serialized_dag.c.dag_id == dag_id))
        conn.execute(delete(t.dag).where(t.dag.c.dag_id == dag_id))
    return DagDeletion(dag_id=dag_id, dag_runs=len(run_ids), task_instances=instances)


def stored_dag_files(engine: Any) -> dict[str, str]:
    """dag id -> the file that holds it, for active DAGs: that file keeps the id when a second file defines it
    too (the CLI's DAG loading asks this before parsing the folder)."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.dag.c.dag_id, t.dag.c.fileloc).where(t.dag.c.is_active)).all()
    return {row.dag_id: row.fileloc for row in rows if row.fileloc}


def scheduling_problems(engine: Any) -> list[SchedulingProblem]:
    """Active DAGs the scheduler reported it cannot schedule, by DAG id (``zonda dags list-import-errors`` shows
    them after the files that failed to import)."""
    dag = t.dag
    with engine.connect() as conn:
        rows = conn.execute(
            select(dag.c.dag_id, dag.c.fileloc, dag.c.scheduling_error)
            .where(dag.c.scheduling_error.is_not(None), dag.c.is_active)
            .order_by(dag.c.dag_id)
        ).all()
    return [SchedulingProblem(r.dag_id, r.fileloc or "", r.scheduling_error) for r in rows]
