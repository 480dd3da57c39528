"""The Gantt view of one DAG run: every try's queued, running and deferred time, and the critical path.

Why from two tables: ``task_instance`` holds only the current try, so the phases that ended earlier (a try that
failed and retried, a try that deferred and resumed) come from ``task_instance_history``, which the transitions
fill as phases end (:mod:`zonda.operations.transitions`). A phase is one stay in a worker: queued from
``queued_dttm``, running from ``running_since`` (the try's ``start_date`` for rows without it) to its end. The
time between a phase that ended ``deferred`` (or ``up_for_reschedule``) and the next phase of the same try is the
deferred (waiting) bar.

The critical path is the chain of tasks whose ends decided the run's end: from the task that ended last, step to
its upstream task that ended last, and so on. With actual times this is the longest path through the dependency
graph: every other chain ended earlier and did not hold anything back.

Four statements per call (run, serialized DAG, instances, history), whatever the DAG's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from zonda.metastore import tables as t
from zonda.operations.dag_runs import find_run
from zonda.state import ACTIVE_STATES, TaskInstanceState
from zonda.timezone import utcnow

#: A bar's phase is named after the state the try was in during it.
QUEUED = TaskInstanceState.QUEUED.value
RUNNING = TaskInstanceState.RUNNING.value
DEFERRED = TaskInstanceState.DEFERRED.value
RESCHEDULED = TaskInstanceState.UP_FOR_RESCHEDULE.value

#: Phases that pause a try rather than end it: the next phase of the same try follows.
_PAUSES = {DEFERRED: DEFERRED, RESCHEDULED: RESCHEDULED}


@dataclass(frozen=True)
class Bar:
    """One stretch of a try: ``kind`` is queued, running, deferred or up_for_reschedule; ``end`` None: still on."""

    kind: str
    start: datetime
    end: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": _iso(self.start), "end": _iso(self.end)}


@dataclass(frozen=True)
class GanttTry:
    try_number: int
    #: The state the try ended in (or is in); None: cleared before it was decided.
    state: str | None
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class GanttRow:
    """One task instance and its tries."""

    task_id: str
    map_index: int
    state: str | None
    tries: tuple[GanttTry, ...]
    critical: bool = False

    @property
    def end(self) -> datetime | None:
        ends = [bar.end for attempt in self.tries for bar in attempt.bars]
        return None if not ends else max((e for e in ends if e is not None), default=None)


@dataclass(frozen=True)
class RunGantt:
    dag_id: str
    run_id: str
    run_state: str
    start_date: datetime | None
    end_date: datetime | None
    #: Rows in the DAG's dependency order, then by map index.
    rows: tuple[GanttRow, ...]
    #: Task ids from the first to the last task of the critical path.
    critical_path: tuple[str, ...]
    #: When this was read: the end of the bars still under way.
    now: datetime = field(default_factory=utcnow)

    def as_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "run_state": self.run_state,
            "start_date": _iso(self.start_date),
            "end_date": _iso(self.end_date),
            "now": _iso(self.now),
            "critical_path": list(self.critical_path),
            "rows": [
                {
                    "task_id": row.task_id,
                    "map_index": row.map_index,
                    "state": row.state,
                    "critical": row.critical,
                    "tries": [
                        {"try_number": a.try_number, "state": a.state, "bars": [b.as_json() for b in a.bars]}
                        for a in row.tries
                    ],
                }
                for row in self.rows
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass
class _Phase:
    try_number: int
    state: str | None
    queued: datetime | None
    running: datetime | None
    end: datetime | None


def run_gantt(engine: Any, dag_id: str, run_id: str, *, now: datetime | None = None) -> RunGantt:
    """The Gantt chart of a run; NotFound for an unknown DAG or run."""
    from zonda.scheduler.runs import load_serialized

    now = now or utcnow()
    ti, history = t.task_instance, t.task_instance_history
    with engine.connect() as conn:
        run = find_run(conn, dag_id, run_id)
        sdag = load_serialized(conn, dag_id)
        current = conn.execute(
            select(
                ti.c.task_id,
                ti.c.map_index,
                ti.c.state,
                ti.c.try_number,
                ti.c.next_method,
                ti.c.queued_dttm,
                ti.c.start_date,
                ti.c.running_since,
                ti.c.end_date,
            ).where(ti.c.dag_run_id == run.id)
        ).all()
        past = conn.execute(
            select(
                history.c.task_id,
                history.c.map_index,
                history.c.try_number,
                history.c.state,
                history.c.queued_dttm,
                history.c.start_date,
                history.c.running_since,
                history.c.end_date,
            )
            .where(history.c.dag_run_id == run.id)
            .order_by(history.c.id)
        ).all()
    phases: dict[tuple[str, int], list[_Phase]] = {}
    for h in past:
        phases.setdefault((h.task_id, h.map_index), []).append(
            _Phase(h.try_number, h.state, h.queued_dttm, h.running_since or h.start_date, h.end_date)
        )
    order = {task_id: i for i, task_id in enumerate(sdag.order)}
    rows = []
    for row in sorted(current, key=lambda r: (order.get(r.task_id, len(order)), r.task_id, r.map_index)):
        mine = phases.get((row.task_id, row.map_index), [])
        live = _current_phase(row, mine)
        if live is not None:
            mine = [*mine, live]
        rows.append(GanttRow(row.task_id, row.map_index, row.state, _tries(mine, row, now)))
    ends = _task_ends(rows)
    path = critical_path({task_id: task.upstream for task_id, task in sdag.tasks.items()}, ends)
    on_path = set(path)
    rows = [
        GanttRow(r.task_id, r.map_index, r.state, r.tries, critical=r.task_id in on_path and r.end is not None)
        for r in rows
    ]
    return RunGantt(dag_id, run_id, run.state, run.start_date, run.end_date, tuple(rows), tuple(path), now)


def _current_phase(row: Any, archived: list[_Phase]) -> _Phase | None:
    """The phase the current row holds that the history does not (yet) have, if any."""
    if row.state in ACTIVE_STATES:
        # A queued row still holds the previous try's number; the claim counts the new try (not a resumed one).
        number = int(row.try_number or 0) + (1 if row.state == QUEUED and not row.next_method else 0)
        running = row.running_since or row.start_date if row.state == RUNNING else None
        return _Phase(number, row.state, row.queued_dttm, running, None)
    if row.state in _PAUSES or not row.try_number or row.start_date is None:
        return None
    if any(p.try_number == row.try_number and p.end == row.end_date for p in archived):
        return None
    # A try that ended without a history row (written before the history existed): what the row says.
    return _Phase(int(row.try_number), row.state, row.queued_dttm, row.running_since or row.start_date, row.end_date)


def _tries(phases: list[_Phase], row: Any, now: datetime) -> tuple[GanttTry, ...]:
    by_try: dict[int, list[_Phase]] = {}
    for phase in phases:
        by_try.setdefault(phase.try_number, []).append(phase)
    tries = []
    for number in sorted(by_try):
        mine = by_try[number]
        bars: list[Bar] = []
        for i, phase in enumerate(mine):
            if phase.queued is not None and (phase.running is None or phase.queued <= phase.running):
                bars.append(Bar(QUEUED, phase.queued, phase.running or phase.end))
            if phase.running is not None:
                bars.append(Bar(RUNNING, phase.running, phase.end))
            if phase.state in _PAUSES and phase.end is not None:
                bars.append(Bar(_PAUSES[phase.state], phase.end, _pause_end(mine, i, row, number)))
        state = mine[-1].state
        if state in _PAUSES and number == row.try_number and row.state not in _PAUSES:
            state = row.state  # the wait ended without another phase (the run timed out, a mark)
        tries.append(GanttTry(number, state, tuple(bars)))
    return tuple(tries)


def _pause_end(phases: list[_Phase], index: int, row: Any, number: int) -> datetime | None:
    """When a deferral (or reschedule wait) ended: the next phase's queueing, else the row's end (None: still
    waiting)."""
    if index + 1 < len(phases):
        following = phases[index + 1]
        return following.queued or following.running or following.end
    if row.state in _PAUSES and int(row.try_number or 0) == number:
        return None
    return row.end_date


def _task_ends(rows: Iterable[GanttRow]) -> dict[str, datetime]:
    """Each task's last end over its instances (a bar still on counts as ending now: it holds the run)."""
    ends: dict[str, datetime] = {}
    for row in rows:
        for attempt in row.tries:
            for bar in attempt.bars:
                end = bar.end or datetime.max.replace(tzinfo=bar.start.tzinfo)
                if row.task_id not in ends or end > ends[row.task_id]:
                    ends[row.task_id] = end
    return ends


def critical_path(upstream: Mapping[str, Iterable[str]], ends: Mapping[str, datetime]) -> list[str]:
    """The chain of tasks whose ends decided the run's end, first task first: start at the task that ended last,
    then repeatedly its upstream task that ended last (ties: the task id, so the answer is stable). Tasks with
    no end (never ran) are not on it. Bounded by the number of tasks (ends strictly decrease along upstream
    edges, and each task is visited once)."""
    if not ends:
        return []
    current: str | None = max(ends, key=lambda task_id: (ends[task_id], task_id))
    path: list[str] = []
    seen: set[str] = set()
    while current is not None and current not in seen:
        path.append(current)
        seen.add(current)
        candidates = [u for u in upstream.get(current, ()) if u in ends and u not in seen]
        current = max(candidates, key=lambda u: (ends[u], u)) if candidates else None
    path.reverse()
    return path
