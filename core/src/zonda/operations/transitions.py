"""The state machine of task instances and DAG runs: the only code that writes their ``state`` columns.

Why one module: the scheduler, the task processes, the triggerer, the in-process runner (``zonda dags test``) and
the CLI (later the web server and REST API) all change states, often at the same moment. Each change here is a
named transition and a compare-and-set: ``UPDATE ... WHERE state IN (<the states it moves from>)`` (and, for a
task process, ``AND pid = <its pid>``), so a transition that lost a race changes nothing and says so by
returning how many rows it changed. A caller never writes a state by itself; a test
(``tests/core/test_state_transitions.py``) scans the source and fails when any other module does.

Every transition names the processes that may call it (:class:`Caller`). ``TaskInstanceState.NONE`` is stored
as SQL NULL. The rows are born in a state too (a task instance ``none``, or ``scheduled`` for the extra
instances of a mapped task; a run ``queued``, or ``running`` when ``dags test`` runs it in its own process):
those INSERTs use the enums and are listed in :data:`BIRTH_STATES`.

The statements a task process runs for every task (claim, end, heartbeat) are built once per shape with bound
parameters and kept in :data:`_OWNED_STATEMENTS`, so a call costs one cached execution.

Try history: ``task_instance`` holds only the latest try, so the transitions that end a phase of a try (it ends,
defers, reschedules, or a person clears or marks it while under way) copy the row into
``task_instance_history`` with one ``INSERT ... SELECT`` in the same transaction (:func:`_archive`; on PostgreSQL a
task process's end, deferral or reschedule is one statement, the UPDATE feeding the INSERT, see
:func:`_end_phase_owned`); the claim stamps ``running_since``. The scheduler's batch transitions end no try and
write no history.

``python -m zonda.operations.transitions --markdown docs/state_machine.md`` writes the table of the docs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from zonda.metastore import tables as t
from zonda.metastore.types import UtcDateTime
from zonda.state import ACTIVE_STATES, SKIPPABLE_STATES, DagRunState, TaskInstanceState
from zonda.timezone import utcnow

TIS = TaskInstanceState
DRS = DagRunState


class Caller(StrEnum):
    """A process that changes states."""

    SCHEDULER = "scheduler"
    WORKER = "task process"
    """A task process: a LocalExecutor worker's fork, ``zonda tasks run``, a remote worker."""
    IN_PROCESS = "in-process runner"
    """``zonda dags test`` and ``zonda.testing.run_dag``: the whole run in one process, no scheduler."""
    TRIGGERER = "triggerer"
    USER = "CLI / API"
    """A person: ``zonda tasks clear``, ``zonda tasks run``, later the web UI and the REST API."""


@dataclass(frozen=True)
class Transition:
    """One named state change: which states it moves from and to, and who may call it."""

    name: str
    subject: Literal["task instance", "DAG run"]
    sources: tuple[StrEnum, ...]
    targets: tuple[StrEnum, ...]
    callers: tuple[Caller, ...]
    summary: str


#: Every transition by name, in the order they are defined (the docs' table follows it).
TRANSITIONS: dict[str, Transition] = {}

#: The states rows are inserted in (not transitions: there is no row to compare with yet).
BIRTH_STATES: dict[str, tuple[StrEnum, ...]] = {
    "task instance": (TIS.NONE, TIS.SCHEDULED),
    "DAG run": (DRS.QUEUED, DRS.RUNNING),
}

ALL_TI_STATES: tuple[TaskInstanceState, ...] = tuple(TIS)
ALL_RUN_STATES: tuple[DagRunState, ...] = tuple(DRS)

_F = TypeVar("_F", bound=Callable[..., Any])


def _transition(
    subject: Literal["task instance", "DAG run"],
    sources: Iterable[StrEnum],
    targets: Iterable[StrEnum],
    callers: Iterable[Caller],
) -> Callable[[_F], _F]:
    """Register the decorated function as a transition; its docstring's first paragraph is its summary."""

    def register(function: _F) -> _F:
        paragraph = (function.__doc__ or "").strip().split("\n\n")[0]
        summary = " ".join(paragraph.split()).replace("``", "`")
        spec = Transition(function.__name__, subject, tuple(sources), tuple(targets), tuple(callers), summary)
        TRANSITIONS[spec.name] = spec
        function.transition = spec  # type: ignore[attr-defined]
        return function

    return register


# --- helpers ----------------------------------------------------------------------------------------------------


def state_in(column: Any, states: Collection[StrEnum]) -> ColumnElement[bool]:
    """``column`` is one of ``states`` (``TaskInstanceState.NONE`` matches NULL)."""
    values = sorted(s.value for s in states if s is not TIS.NONE)
    parts: list[ColumnElement[bool]] = []
    if TIS.NONE in states:
        parts.append(column.is_(None))
    if len(values) == 1:
        parts.append(column == values[0])
    elif values:
        parts.append(column.in_(values))
    if not parts:
        raise ValueError("a compare-and-set needs at least one expected state")
    return parts[0] if len(parts) == 1 else or_(*parts)


def stored(state: StrEnum) -> str | None:
    """The column value of a state (NULL for ``none``)."""
    return None if state is TIS.NONE else state.value


def as_ti_state(value: str | None) -> TaskInstanceState:
    """A task instance's ``state`` column as the enum (NULL and ``"none"`` are ``NONE``)."""
    return TIS.NONE if value is None else TIS(value)


def _check(name: str, state: StrEnum) -> None:
    spec = TRANSITIONS[name]
    if state not in spec.targets:
        allowed = ", ".join(s.value for s in spec.targets)
        raise ValueError(f"{name} moves a {spec.subject} to {allowed}, not to {state.value!r}")


def _no_state(values: Mapping[str, Any]) -> None:
    if "state" in values:
        raise ValueError("pass the state through the transition's own argument, not among the column values")


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


# --- the task process's statements, prebuilt -----------------------------------------------------------------

#: (expected states, owner check, columns) -> the prepared UPDATE of one task instance.
_OWNED_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _owned_statement(sources: tuple[StrEnum, ...], owner: str, keys: tuple[str, ...], with_try: bool = False) -> Any:
    shape = (sources, owner, keys, with_try)
    stmt = _OWNED_STATEMENTS.get(shape)
    if stmt is None:
        ti = t.task_instance
        where = [
            ti.c.dag_run_id == bindparam("w_run"),
            ti.c.task_id == bindparam("w_task"),
            ti.c.map_index == bindparam("w_index"),
            state_in(ti.c.state, sources),
        ]
        if owner == "pid":
            where.append(ti.c.pid == bindparam("w_pid"))
        elif owner == "unowned":
            where.append(ti.c.pid.is_(None))
        if with_try:
            where.append(ti.c.try_number == bindparam("w_try"))
        stmt = update(ti).where(*where).values({key: bindparam(f"v_{key}") for key in (*keys, "updated_at")})
        _OWNED_STATEMENTS[shape] = stmt
    return stmt


def _update_one(
    conn: Connection,
    sources: tuple[StrEnum, ...],
    target: StrEnum | None,
    dag_run_id: int,
    task_id: str,
    map_index: int,
    values: Mapping[str, Any],
    pid: int | Literal["any"] | None = "any",
    try_number: int | None = None,
    *,
    archived: bool = False,
    end: datetime | None = None,
) -> int:
    """UPDATE one task instance while it is in ``sources`` (and, unless ``pid`` is "any", owned by ``pid``; and,
    when ``try_number`` is given, while it holds that try number). ``archived`` (PostgreSQL only): the same
    statement copies the updated row into the history, ending its phase at ``end`` (default: its ``end_date``)."""
    _no_state(values)
    fields = dict(values)
    if target is not None:
        fields["state"] = stored(target)
    owner = "any" if pid == "any" else ("unowned" if pid is None else "pid")
    shape = (sources, owner, tuple(sorted(fields)), try_number is not None)
    stmt = _archived_statement(*shape, with_end=end is not None) if archived else _owned_statement(*shape)
    params = {f"v_{key}": value for key, value in fields.items()}
    params.update(v_updated_at=utcnow(), w_run=dag_run_id, w_task=task_id, w_index=map_index)
    if owner == "pid":
        params["w_pid"] = pid
    if try_number is not None:
        params["w_try"] = try_number
    if archived and end is not None:
        params["phase_end"] = end
    return _rowcount(conn.execute(stmt, params))


def _end_phase_owned(
    conn: Connection,
    target: StrEnum,
    dag_run_id: int,
    task_id: str,
    map_index: int,
    values: Mapping[str, Any],
    pid: int | None,
    *,
    end: datetime | None = None,
) -> int:
    """A task process ends the running phase of its row (``running`` -> ``target``) and archives it.

    Why one statement on PostgreSQL: every finished try used to pay a second round trip for the history row
    (an ``INSERT ... SELECT`` re-reading the row just updated). There the UPDATE's ``RETURNING`` feeds the
    INSERT in one data-modifying ``WITH``; its row count is the UPDATE's. SQLite and MariaDB cannot nest an
    UPDATE in a WITH, so they run the UPDATE and :func:`_archive` one after the other, in the same transaction.
    ``end``: when the phase ended (default: the row's new ``end_date``)."""
    if conn.dialect.name == "postgresql":
        return _update_one(
            conn, (TIS.RUNNING,), target, dag_run_id, task_id, map_index, values, pid, archived=True, end=end
        )
    changed = _update_one(conn, (TIS.RUNNING,), target, dag_run_id, task_id, map_index, values, pid)
    if changed:
        _archive(conn, _by_key(dag_run_id, task_id, map_index), end=end)
    return changed


def _archived_statement(
    sources: tuple[StrEnum, ...], owner: str, keys: tuple[str, ...], with_try: bool, *, with_end: bool
) -> Any:
    """The prebuilt ``WITH ended AS (UPDATE ... RETURNING ...) INSERT INTO task_instance_history SELECT ...``."""
    shape = ("archived", sources, owner, keys, with_try, with_end)
    stmt = _OWNED_STATEMENTS.get(shape)
    if stmt is None:
        ti = t.task_instance
        ended = (
            _owned_statement(sources, owner, keys, with_try)
            .returning(*(ti.c[name] for name in _RETURNED_COLUMNS))
            .cte("ended")
        )
        phase_end = bindparam("phase_end", type_=UtcDateTime())
        rows = select(*(phase_end if with_end and name == "end_date" else ended.c[name] for name in _RETURNED_COLUMNS))
        # SQLAlchemy reports no row count for an INSERT ... SELECT unless asked to keep the cursor's.
        stmt = (
            insert(t.task_instance_history)
            .from_select(list(_HISTORY_COLUMNS), rows)
            .execution_options(preserve_rowcount=True)
        )
        _OWNED_STATEMENTS[shape] = stmt
    return stmt


# --- try history -----------------------------------------------------------------------------------------------

_HISTORY_COLUMNS = (
    "dag_run_id",
    "task_instance_id",
    "task_id",
    "map_index",
    "try_number",
    "state",
    "queued_dttm",
    "start_date",
    "running_since",
    "end_date",
    "hostname",
    "log_server",
)

#: The ``task_instance`` columns of :data:`_HISTORY_COLUMNS`, in that order (``id`` is ``task_instance_id``).
_RETURNED_COLUMNS = tuple("id" if name == "task_instance_id" else name for name in _HISTORY_COLUMNS)

#: The phases a person's clear or mark cuts short (a queued try has not started: nothing to keep).
_UNDER_WAY = (TIS.RUNNING, TIS.DEFERRED, TIS.UP_FOR_RESCHEDULE)


def _archive(conn: Connection, where: Sequence[ColumnElement[bool]], *, end: datetime | None = None) -> None:
    """Copy the matching task instances' current phase into ``task_instance_history``: one INSERT ... SELECT.
    ``end`` is when the phase ended (default: the row's ``end_date``, for a try that ended)."""
    ti = t.task_instance
    end_column = ti.c.end_date if end is None else bindparam("phase_end", end, type_=UtcDateTime())
    rows = select(
        ti.c.dag_run_id,
        ti.c.id,
        ti.c.task_id,
        ti.c.map_index,
        ti.c.try_number,
        ti.c.state,
        ti.c.queued_dttm,
        ti.c.start_date,
        ti.c.running_since,
        end_column,
        ti.c.hostname,
        ti.c.log_server,
    ).where(*where)
    conn.execute(insert(t.task_instance_history).from_select(list(_HISTORY_COLUMNS), rows))


def _by_key(dag_run_id: int, task_id: str, map_index: int) -> list[ColumnElement[bool]]:
    ti = t.task_instance
    return [ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id, ti.c.map_index == map_index]


# --- task instances: the task process ---------------------------------------------------------------------------

_RUNS_AGAIN = (TIS.NONE, TIS.SCHEDULED, TIS.QUEUED, TIS.UP_FOR_RETRY)
_ENDS = (TIS.SUCCESS, TIS.FAILED, TIS.SKIPPED, TIS.UP_FOR_RETRY)


@_transition("task instance", [TIS.QUEUED], [TIS.RUNNING], [Caller.WORKER])
def start_ti(
    conn: Connection,
    dag_run_id: int,
    task_id: str,
    map_index: int,
    values: Mapping[str, Any],
    *,
    try_number: int | None = None,
) -> int:
    """Claim a queued instance for this task process: two processes can never both run one try. With
    ``try_number``, only while the row holds that try (a workload for an older try delivered late never takes a
    newer one)."""
    fields = {**values, "running_since": utcnow()}
    return _update_one(conn, (TIS.QUEUED,), TIS.RUNNING, dag_run_id, task_id, map_index, fields, try_number=try_number)


@_transition("task instance", _RUNS_AGAIN, [TIS.RUNNING], [Caller.IN_PROCESS])
def start_ti_in_process(
    conn: Connection, dag_run_id: int, task_id: str, map_index: int, values: Mapping[str, Any]
) -> int:
    """Start the next try of an instance of a run this process runs by itself (``dags test``)."""
    fields = {**values, "running_since": utcnow()}
    return _update_one(conn, _RUNS_AGAIN, TIS.RUNNING, dag_run_id, task_id, map_index, fields)


@_transition("task instance", [TIS.RUNNING], _ENDS, [Caller.WORKER, Caller.IN_PROCESS])
def finish_ti(
    conn: Connection,
    dag_run_id: int,
    task_id: str,
    map_index: int,
    state: TaskInstanceState,
    values: Mapping[str, Any],
    *,
    pid: int | None,
) -> int:
    """Record the end of a try, only while this process (``pid``) still owns the running row."""
    _check("finish_ti", state)
    return _end_phase_owned(conn, state, dag_run_id, task_id, map_index, values, pid)


@_transition("task instance", [TIS.RUNNING], [TIS.RUNNING], [Caller.WORKER])
def heartbeat_ti(conn: Connection, dag_run_id: int, task_id: str, map_index: int, *, pid: int) -> int:
    """Refresh ``last_heartbeat_at``; 0 rows means the row is no longer running in this process (stop)."""
    return _update_one(conn, (TIS.RUNNING,), None, dag_run_id, task_id, map_index, {"last_heartbeat_at": utcnow()}, pid)


@_transition("task instance", [TIS.RUNNING], [TIS.UP_FOR_RESCHEDULE], [Caller.WORKER])
def reschedule_ti(
    conn: Connection, dag_run_id: int, task_id: str, map_index: int, values: Mapping[str, Any], *, pid: int | None
) -> int:
    """A reschedule-mode sensor hands its worker slot back until ``ready_at``, while it owns the row."""
    return _end_phase_owned(conn, TIS.UP_FOR_RESCHEDULE, dag_run_id, task_id, map_index, values, pid, end=utcnow())


@_transition("task instance", [TIS.RUNNING], [TIS.DEFERRED], [Caller.WORKER])
def defer_ti(
    conn: Connection,
    dag_run_id: int,
    task_id: str,
    map_index: int,
    *,
    trigger_id: int,
    values: Mapping[str, Any],
    pid: int | None,
) -> int:
    """Hand the task to the triggerer (its trigger row is inserted in the same transaction), while owned."""
    fields = {**values, "trigger_id": trigger_id}
    return _end_phase_owned(conn, TIS.DEFERRED, dag_run_id, task_id, map_index, fields, pid, end=utcnow())


_NOT_STARTED = (TIS.NONE, *sorted(SKIPPABLE_STATES))


@_transition("task instance", _NOT_STARTED, [TIS.SKIPPED], [Caller.WORKER])
def skip_branch_tis(conn: Connection, dag_run_id: int, task_ids: Iterable[str], *, now: datetime) -> int:
    """A branch or short-circuit task skips downstream instances with no try under way (the decision engine's
    rule, :data:`zonda.state.SKIPPABLE_STATES`: queued has not started, a task process only runs an instance
    it moves from queued; one waiting for its retry or reschedule has none under way either)."""
    ti = t.task_instance
    return _rowcount(
        conn.execute(
            update(ti)
            .where(ti.c.dag_run_id == dag_run_id, ti.c.task_id.in_(list(task_ids)), state_in(ti.c.state, _NOT_STARTED))
            .values(state=TIS.SKIPPED.value, end_date=now, updated_at=now)
        )
    )


_SETTLED_IN_PROCESS = (TIS.SKIPPED, TIS.UPSTREAM_FAILED, TIS.FAILED)


@_transition("task instance", _RUNS_AGAIN, _SETTLED_IN_PROCESS, [Caller.IN_PROCESS])
def settle_ti_in_process(
    conn: Connection, dag_run_id: int, task_id: str, map_index: int, state: TaskInstanceState, *, end_date: datetime
) -> int:
    """End an instance that will not run (trigger rule, branch, a mapped task that cannot expand) in a run
    this process runs by itself."""
    _check("settle_ti_in_process", state)
    return _update_one(conn, _RUNS_AGAIN, state, dag_run_id, task_id, map_index, {"end_date": end_date})


# --- task instances: the scheduler -----------------------------------------------------------------------------


def _by_ids(conn: Connection, ids: Sequence[int], sources: Collection[StrEnum], values: Mapping[str, Any]) -> int:
    if not ids:
        return 0
    ti = t.task_instance
    changed = 0
    for start in range(0, len(ids), 500):  # bounded IN lists
        chunk = list(ids[start : start + 500])
        changed += _rowcount(
            conn.execute(update(ti).where(ti.c.id.in_(chunk), state_in(ti.c.state, sources)).values(**values))
        )
    return changed


@_transition("task instance", [TIS.NONE], [TIS.SCHEDULED], [Caller.SCHEDULER])
def schedule_tis(conn: Connection, ids: Sequence[int], *, now: datetime, map_index: int | None = None) -> int:
    """Instances whose trigger rule is met may run (``map_index=0``: the first instance of a mapped task
    that has just expanded)."""
    values: dict[str, Any] = {"state": TIS.SCHEDULED.value, "updated_at": now}
    if map_index is not None:
        values["map_index"] = map_index
    return _by_ids(conn, ids, (TIS.NONE,), values)


@_transition("task instance", [TIS.NONE], [TIS.NONE], [Caller.SCHEDULER])
def expand_group_placeholder_ti(conn: Connection, ti_id: int, *, now: datetime) -> int:
    """A task of a mapped task group expands: its placeholder becomes map index 0, still undecided (the
    other instances are inserted beside it), so each instance is then decided on its own."""
    return _by_ids(conn, [ti_id], (TIS.NONE,), {"map_index": 0, "updated_at": now})


_WAITING = (TIS.UP_FOR_RETRY, TIS.UP_FOR_RESCHEDULE)


@_transition("task instance", _WAITING, [TIS.SCHEDULED], [Caller.SCHEDULER])
def ready_waiting_tis(conn: Connection, ids: Sequence[int], *, now: datetime) -> int:
    """A retry's delay or a reschedule's wait has passed: the instance may run again."""
    return _by_ids(conn, ids, _WAITING, {"state": TIS.SCHEDULED.value, "ready_at": None, "updated_at": now})


_SETTLED = (TIS.SKIPPED, TIS.UPSTREAM_FAILED)


@_transition("task instance", [TIS.NONE], _SETTLED, [Caller.SCHEDULER])
def settle_tis(conn: Connection, ids: Sequence[int], state: TaskInstanceState, *, now: datetime) -> int:
    """Instances that will not run: their trigger rule says skip or upstream failed, or a mapped task has
    nothing to map over."""
    _check("settle_tis", state)
    return _by_ids(conn, ids, (TIS.NONE,), {"state": state.value, "end_date": now, "updated_at": now})


@dataclass(frozen=True)
class Decided:
    """One decision of the scheduler's pass over a run: move ``ti_id`` from ``seen`` (the state it read) to
    ``target``; ``map_index`` for the first instance of a mapped task that expanded."""

    ti_id: int
    seen: TaskInstanceState
    target: TaskInstanceState
    map_index: int | None = None


def write_decisions(conn: Connection, decisions: Iterable[Decided], *, now: datetime) -> int:
    """Write a pass's decisions through the transitions above, grouped into a few statements. Each row
    moves only from the state the pass read: what another process changed meanwhile is left alone."""
    groups: dict[tuple[str, TaskInstanceState, int | None], list[int]] = {}
    for d in decisions:
        if d.target is TIS.SCHEDULED and d.seen is TIS.NONE:
            name = "schedule_tis"
        elif d.target is TIS.SCHEDULED and d.seen in _WAITING:
            name = "ready_waiting_tis"
        elif d.target in _SETTLED and d.seen is TIS.NONE:
            name = "settle_tis"
        else:
            raise ValueError(f"no transition moves a task instance from {d.seen.value!r} to {d.target.value!r}")
        groups.setdefault((name, d.target, d.map_index), []).append(d.ti_id)
    changed = 0
    for (name, target, map_index), ids in groups.items():
        if name == "schedule_tis":
            changed += schedule_tis(conn, ids, now=now, map_index=map_index)
        elif name == "ready_waiting_tis":
            changed += ready_waiting_tis(conn, ids, now=now)
        else:
            changed += settle_tis(conn, ids, target, now=now)
    return changed


@_transition("task instance", [TIS.SCHEDULED], [TIS.QUEUED], [Caller.SCHEDULER])
def queue_tis(conn: Connection, ids: Sequence[int], *, job_id: int | None, now: datetime) -> int:
    """Hand scheduled instances to the executor, within pools and limits; ``job_id`` is the scheduler's."""
    values = {"state": TIS.QUEUED.value, "queued_dttm": now, "queued_by_job_id": job_id, "updated_at": now}
    return _by_ids(conn, ids, (TIS.SCHEDULED,), values)


@_transition("task instance", [TIS.QUEUED], [TIS.SCHEDULED], [Caller.SCHEDULER])
def reset_orphaned_tis(conn: Connection, *, alive_job_ids: Collection[int], now: datetime) -> int:
    """Instances queued by a scheduler that is gone (and never started) go back to be queued again."""
    ti = t.task_instance
    return _rowcount(
        conn.execute(
            update(ti)
            .where(
                ti.c.state == TIS.QUEUED.value,
                or_(ti.c.queued_by_job_id.is_(None), ti.c.queued_by_job_id.notin_(list(alive_job_ids))),
            )
            .values(state=TIS.SCHEDULED.value, queued_by_job_id=None, updated_at=now)
        )
    )


@_transition("task instance", ACTIVE_STATES, ACTIVE_STATES, [Caller.SCHEDULER])
def adopt_orphaned_tis(conn: Connection, ids: Sequence[int], *, from_job_id: int, job_id: int, now: datetime) -> int:
    """A scheduler takes over instances a scheduler that is gone queued (or saw start) on an executor that
    outlives it (Celery's messages stay on the broker): their state is kept, ``queued_by_job_id`` becomes its own,
    so they are neither queued a second time nor left without a scheduler to notice they are lost.

    A compare-and-set on the state and on the gone scheduler's job, so two schedulers adopting at once take each
    instance once."""
    ti = t.task_instance
    return _rowcount(
        conn.execute(
            update(ti)
            .where(ti.c.id.in_(list(ids)), state_in(ti.c.state, ACTIVE_STATES), ti.c.queued_by_job_id == from_job_id)
            .values(queued_by_job_id=job_id, updated_at=now)
        )
    )


@_transition("task instance", [TIS.QUEUED], [TIS.SCHEDULED], [Caller.SCHEDULER])
def requeue_lost_ti(conn: Connection, ti_id: int, *, try_number: int, job_id: int | None, now: datetime) -> int:
    """An instance this scheduler queued whose workload ended without claiming it (its process died on a dead
    connection, the workload was lost) goes back to be queued again; no try is used up.

    A compare-and-set on ``queued``, the try number the row held when the workload was sent, and the queueing
    scheduler's job: a workload that claimed the try meanwhile, or another scheduler's queue, is left alone."""
    ti = t.task_instance
    return _rowcount(
        conn.execute(
            update(ti)
            .where(
                ti.c.id == ti_id,
                ti.c.state == TIS.QUEUED.value,
                ti.c.try_number == try_number,
                ti.c.queued_by_job_id == job_id,
            )
            .values(state=TIS.SCHEDULED.value, queued_by_job_id=None, updated_at=now)
        )
    )


_FAILED_TRY = (TIS.UP_FOR_RETRY, TIS.FAILED)


@_transition("task instance", ACTIVE_STATES, _FAILED_TRY, [Caller.SCHEDULER])
def fail_stale_ti(
    conn: Connection,
    ti_id: int,
    *,
    seen: TaskInstanceState,
    state: TaskInstanceState,
    ready_at: datetime | None,
    now: datetime,
) -> int:
    """End a try whose process died or stopped heart-beating, as the state ``seen`` says it still runs."""
    _check("fail_stale_ti", state)
    if seen not in ACTIVE_STATES:
        raise ValueError(f"fail_stale_ti ends a queued or running try, not a {seen.value!r} one")
    ti = t.task_instance
    values: dict[str, Any] = {"state": state.value, "end_date": now, "pid": None, "updated_at": now}
    if state is TIS.UP_FOR_RETRY:
        values["ready_at"] = ready_at
    changed = _rowcount(conn.execute(update(ti).where(ti.c.id == ti_id, ti.c.state == seen.value).values(**values)))
    if changed and seen is TIS.RUNNING:
        _archive(conn, [ti.c.id == ti_id])
    return changed


_TIMED_OUT = (TIS.NONE, TIS.SCHEDULED, TIS.UP_FOR_RETRY, TIS.DEFERRED)


@_transition("task instance", _TIMED_OUT, [TIS.SKIPPED], [Caller.SCHEDULER])
def skip_timed_out_tis(conn: Connection, dag_run_id: int, *, now: datetime) -> int:
    """The run exceeded its ``dagrun_timeout``: its instances that are not running are skipped."""
    ti = t.task_instance
    return _rowcount(
        conn.execute(
            update(ti)
            .where(ti.c.dag_run_id == dag_run_id, state_in(ti.c.state, _TIMED_OUT))
            .values(state=TIS.SKIPPED.value, end_date=now, updated_at=now)
        )
    )


# --- task instances: the triggerer --------------------------------------------------------------------------


@_transition("task instance", [TIS.DEFERRED], [TIS.SCHEDULED], [Caller.TRIGGERER, Caller.SCHEDULER])
def resume_deferred_tis(
    conn: Connection, rows: Sequence[Mapping[str, Any]], *, next_method: str | None = None, now: datetime
) -> int:
    """Deferred instances whose trigger fired (or failed, or timed out) are scheduled to resume; each row
    (``{"b_id": ti id, "b_kwargs": JSON}``) gets its own ``next_kwargs``, ``next_method`` replaces the
    resume method when given (a trigger error or timeout: the resumed try fails).

    A large batch on PostgreSQL is one ``UPDATE ... FROM (VALUES ...)`` per chunk: an executemany there is a
    round trip per row (about 0.15 ms each), too slow when a thousand triggers fire at once. Small batches (the
    steady state) and other backends use an executemany, whose statement is compiled once."""
    if not rows:
        return 0
    ti = t.task_instance
    values: dict[str, Any] = {
        "state": TIS.SCHEDULED.value,
        "trigger_id": None,
        "trigger_timeout": None,
        "updated_at": now,
    }
    if next_method is not None:
        values["next_method"] = next_method
    deferred = ti.c.state == TIS.DEFERRED.value
    if conn.dialect.name == "postgresql" and len(rows) > 50:
        from sqlalchemy import Integer, Text, column
        from sqlalchemy import values as values_clause

        changed = 0
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            data = values_clause(column("b_id", Integer), column("b_kwargs", Text), name="fired").data(
                [(r["b_id"], r["b_kwargs"]) for r in chunk]
            )
            changed += _rowcount(
                conn.execute(
                    update(ti).where(ti.c.id == data.c.b_id, deferred).values(next_kwargs=data.c.b_kwargs, **values)
                )
            )
        return changed
    stmt = update(ti).where(ti.c.id == bindparam("b_id"), deferred).values(next_kwargs=bindparam("b_kwargs"), **values)
    return _rowcount(conn.execute(stmt, list(rows)))


# --- task instances: a person (CLI, API) ----------------------------------------------------------------------

_RUNNABLE_BY_HAND = (TIS.NONE, TIS.SCHEDULED, TIS.UP_FOR_RETRY, TIS.UP_FOR_RESCHEDULE)


@_transition("task instance", _RUNNABLE_BY_HAND, [TIS.QUEUED], [Caller.USER])
def queue_ti_by_hand(conn: Connection, ti_id: int, *, seen: TaskInstanceState, now: datetime) -> int:
    """Queue one instance for ``zonda tasks run``, which then runs it in its own process."""
    if seen not in _RUNNABLE_BY_HAND:
        raise ValueError(f"an instance that is {seen.value!r} cannot be queued by hand; clear it first")
    ti = t.task_instance
    return _rowcount(
        conn.execute(
            update(ti)
            .where(ti.c.id == ti_id, state_in(ti.c.state, (seen,)))
            .values(state=TIS.QUEUED.value, queued_dttm=now, queued_by_job_id=None, ready_at=None, updated_at=now)
        )
    )


@dataclass(frozen=True)
class Seen:
    """A task instance as an operation read it: its id and state (the compare-and-set expects that state),
    and its try number."""

    ti_id: int
    state: TaskInstanceState
    try_number: int = 0


@_transition("task instance", ALL_TI_STATES, [TIS.NONE], [Caller.USER])
def clear_tis(conn: Connection, instances: Iterable[tuple[Seen, int]], *, now: datetime) -> int:
    """Reset instances so the scheduler runs them again; each pair is (the instance as read, its task's
    retries). As Airflow: the tries already made stay counted, and the task gets its retries again. A row
    whose state changed since it was read is left alone."""
    ti = t.task_instance
    changed = 0
    for seen, retries in instances:
        if seen.state in _UNDER_WAY:
            _archive(conn, [ti.c.id == seen.ti_id, state_in(ti.c.state, (seen.state,))], end=now)
        changed += _rowcount(
            conn.execute(
                update(ti)
                .where(ti.c.id == seen.ti_id, state_in(ti.c.state, (seen.state,)))
                .values(
                    state=None,
                    max_tries=seen.try_number + retries,
                    ready_at=None,
                    pid=None,
                    queued_by_job_id=None,
                    job_id=None,
                    trigger_id=None,
                    trigger_timeout=None,
                    next_method=None,
                    next_kwargs=None,
                    updated_at=now,
                )
            )
        )
    return changed


_MARKABLE = (TIS.SUCCESS, TIS.FAILED, TIS.SKIPPED)


@_transition("task instance", ALL_TI_STATES, _MARKABLE, [Caller.USER])
def mark_tis(conn: Connection, instances: Iterable[Seen], state: TaskInstanceState, *, now: datetime) -> int:
    """Set instances to success, failed or skipped by hand. A running one's task process finds it no longer
    owns the row at its next heartbeat and stops. A row whose state changed since it was read is left alone."""
    _check("mark_tis", state)
    ti = t.task_instance
    changed = 0
    for seen in instances:
        marked = _rowcount(
            conn.execute(
                update(ti)
                .where(ti.c.id == seen.ti_id, state_in(ti.c.state, (seen.state,)))
                .values(
                    state=state.value,
                    end_date=now,
                    pid=None,
                    ready_at=None,
                    queued_by_job_id=None,
                    trigger_id=None,
                    trigger_timeout=None,
                    updated_at=now,
                )
            )
        )
        if marked and seen.state in _UNDER_WAY:
            _archive(conn, [ti.c.id == seen.ti_id])
        changed += marked
    return changed


# --- task instance columns that are not its state ----------------------------------------------------------

_FIELD_STATEMENTS: dict[tuple[str, ...], Any] = {}


def update_ti_fields(conn: Connection, dag_run_id: int, task_id: str, map_index: int, values: Mapping[str, Any]) -> int:
    """Write columns of one task instance other than its state (not a transition: refuses ``state``)."""
    _no_state(values)
    keys = tuple(sorted(values))
    stmt = _FIELD_STATEMENTS.get(keys)
    if stmt is None:
        ti = t.task_instance
        stmt = (
            update(ti)
            .where(
                ti.c.dag_run_id == bindparam("w_run"),
                ti.c.task_id == bindparam("w_task"),
                ti.c.map_index == bindparam("w_index"),
            )
            .values({key: bindparam(f"v_{key}") for key in (*keys, "updated_at")})
        )
        _FIELD_STATEMENTS[keys] = stmt
    params = {f"v_{key}": value for key, value in values.items()}
    params.update(v_updated_at=utcnow(), w_run=dag_run_id, w_task=task_id, w_index=map_index)
    return _rowcount(conn.execute(stmt, params))


# --- DAG runs --------------------------------------------------------------------------------------------------


@_transition("DAG run", [DRS.QUEUED], [DRS.RUNNING], [Caller.SCHEDULER])
def start_run(conn: Connection, run_id: int, *, now: datetime) -> int:
    """Start a queued run (within ``max_active_runs``)."""
    dr = t.dag_run
    return _rowcount(
        conn.execute(
            update(dr)
            .where(dr.c.id == run_id, dr.c.state == DRS.QUEUED.value)
            .values(state=DRS.RUNNING.value, start_date=now)
        )
    )


_RUN_ENDS = (DRS.SUCCESS, DRS.FAILED)


@_transition("DAG run", [DRS.RUNNING], _RUN_ENDS, [Caller.SCHEDULER, Caller.IN_PROCESS])
def finish_run(conn: Connection, run_id: int, state: DagRunState, *, end_date: datetime) -> int:
    """Record a run's end: every instance finished (its leaves decide success or failure), or it timed out."""
    _check("finish_run", state)
    dr = t.dag_run
    return _rowcount(
        conn.execute(
            update(dr)
            .where(dr.c.id == run_id, dr.c.state == DRS.RUNNING.value)
            .values(state=state.value, end_date=end_date)
        )
    )


@_transition("DAG run", ALL_RUN_STATES, [DRS.QUEUED], [Caller.USER])
def requeue_runs(conn: Connection, runs: Iterable[tuple[int, DagRunState]], *, now: datetime) -> int:
    """Queue runs again after some of their instances were cleared; each pair is (run id, state as read)."""
    dr = t.dag_run
    changed = 0
    for run_id, seen in runs:
        changed += _rowcount(
            conn.execute(
                update(dr)
                .where(dr.c.id == run_id, dr.c.state == seen.value)
                .values(
                    state=DRS.QUEUED.value,
                    queued_at=now,
                    start_date=None,
                    end_date=None,
                    last_scheduling_decision=None,
                )
            )
        )
    return changed


_SETTABLE_RUN_STATES = (DRS.QUEUED, DRS.SUCCESS, DRS.FAILED)


@_transition("DAG run", ALL_RUN_STATES, _SETTABLE_RUN_STATES, [Caller.USER])
def set_run_state(conn: Connection, run_id: int, state: DagRunState, *, seen: DagRunState, now: datetime) -> int:
    """Set a run's state by hand (its task instances are the caller's business: see
    :mod:`zonda.operations.dag_runs_state`). Queued starts it over; success or failed ends it."""
    _check("set_run_state", state)
    dr = t.dag_run
    if state is DRS.QUEUED:
        values: dict[str, Any] = {
            "queued_at": now,
            "start_date": None,
            "end_date": None,
            "last_scheduling_decision": None,
        }
    else:
        values = {"end_date": now}
    return _rowcount(
        conn.execute(update(dr).where(dr.c.id == run_id, dr.c.state == seen.value).values(state=state.value, **values))
    )


# --- the docs -------------------------------------------------------------------------------------------------


def _names(states: Sequence[StrEnum], every: Sequence[StrEnum]) -> str:
    if len(states) == len(every) and set(states) == set(every):
        return "any"
    return ", ".join(f"`{s.value}`" for s in states)


def markdown() -> str:
    """The state machine as Markdown: a diagram per subject and a table of every transition."""
    lines = [
        "# Task instance and DAG run states",
        "",
        "<!-- Generated by `python -m zonda.operations.transitions --markdown docs/state_machine.md`;"
        " a test checks it is current. -->",
        "",
        "Every change of a task instance's or a DAG run's state is one of the named transitions of",
        "`zonda.operations.transitions`, a compare-and-set: it changes a row only while the row is in one of the",
        "states it moves from, and reports how many rows it changed. No other code writes these states.",
        "",
        "Rows are born in: "
        + "; ".join(
            f"{subject} {', '.join(f'`{s.value}`' for s in states)}" for subject, states in BIRTH_STATES.items()
        )
        + ".",
        "",
    ]
    for subject, every in (("task instance", ALL_TI_STATES), ("DAG run", ALL_RUN_STATES)):
        specs = [s for s in TRANSITIONS.values() if s.subject == subject]
        lines += [f"## {subject[0].upper()}{subject[1:]}s", "", "```mermaid", "stateDiagram-v2"]
        edges: dict[tuple[str, str], list[str]] = {}
        from_any = []
        for spec in specs:
            if len(spec.sources) > 1 and set(spec.sources) == set(every):
                from_any.append(spec)  # an edge from every state would hide the others: said below instead
                continue
            for source in spec.sources:
                for target in spec.targets:
                    if source is not target:
                        edges.setdefault((source.value, target.value), []).append(spec.name)
        for (source, target), names in edges.items():
            lines.append(f"    {source} --> {target}: {', '.join(names)}")
        lines.append("```")
        for spec in from_any:
            lines += ["", f"From any state, `{spec.name}` moves a {subject} to {_names(spec.targets, every)}."]
        lines += ["", "| Transition | From | To | Called by | What |", "|---|---|---|---|---|"]
        for spec in specs:
            lines.append(
                f"| `{spec.name}` | {_names(spec.sources, every)} | {_names(spec.targets, every)} | "
                f"{', '.join(c.value for c in spec.callers)} | {spec.summary} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zonda.operations.transitions", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", metavar="PATH", nargs="?", const="-", help="write the table (default stdout)")
    args = parser.parse_args(argv)
    if args.markdown is None:
        parser.print_help()
        return 2
    text = markdown()
    if args.markdown == "-":
        sys.stdout.write(text)
    else:
        from pathlib import Path

        Path(args.markdown).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
