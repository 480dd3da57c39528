"""The grid of one DAG: its runs (newest first, a page at a time) against its tasks, as compact data.

Called by the web server's grid and graph endpoints. A page costs three statements whatever the number of tasks
or runs: the serialized DAG (decoded, its tasks not built), one page of runs (keyset on logical date then id, so
page 400 costs what page 1 does), and the task-instance states of those runs counted per task and state (a
mapped task's thousand instances arrive as a few counts, not a thousand rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from zonda.metastore import tables as t
from zonda.scheduler.runs import unknown_dag
from zonda.scheduler.serialized import decode_serialized

#: One letter per task-instance state: a run's states travel as one short string, one letter per task.
STATE_CODES: dict[str, str] = {
    "none": "-",
    "scheduled": "S",
    "queued": "Q",
    "running": "R",
    "success": "s",
    "failed": "f",
    "skipped": "k",
    "upstream_failed": "u",
    "up_for_retry": "r",
    "up_for_reschedule": "e",
    "deferred": "d",
    "removed": "x",
}
_STATE_OF_CODE = {letter: state for state, letter in STATE_CODES.items()}
#: A task with no instance in that run (added to the DAG after the run was made).
NO_INSTANCE = "."
#: Which state a row of several (a mapped task's instances, a folded group) shows: the first one present here.
SUMMARY_PRECEDENCE = (
    "failed",
    "upstream_failed",
    "up_for_retry",
    "up_for_reschedule",
    "running",
    "deferred",
    "queued",
    "scheduled",
    "none",
    "success",
    "skipped",
    "removed",
)
MAX_PAGE = 100


@dataclass(frozen=True)
class GridTask:
    task_id: str
    #: The innermost task group holding it; None at the top level.
    group: str | None
    is_mapped: bool
    operator: str


@dataclass(frozen=True)
class GridGroup:
    group_id: str
    parent: str | None
    tooltip: str = ""


@dataclass(frozen=True)
class GridRun:
    id: int
    run_id: str
    logical_date: datetime | None
    state: str
    run_type: str
    #: One :data:`STATE_CODES` letter per task, in :attr:`GridPage.tasks` order (a mapped task: its summary).
    states: str
    #: Mapped tasks only: task index -> {state: count of its instances}.
    mapped: dict[int, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class GridPage:
    dag_id: str
    #: Tasks in tree order: each group's tasks together, groups where their first task stands in dependency order.
    tasks: list[GridTask]
    groups: list[GridGroup]
    runs: list[GridRun]
    #: Cursor of the next (older) page: the id of this page's oldest run; None when there is none.
    next_before: int | None


def summary_state(counts: dict[str, int]) -> str:
    """The state a row of several instances shows: the most urgent present (failures before successes)."""
    for state in SUMMARY_PRECEDENCE:
        if counts.get(state):
            return state
    return next(iter(counts), "none")


def tree_order(data: dict[str, Any]) -> tuple[list[GridTask], list[GridGroup]]:
    """Tasks ordered so that every group's members are adjacent (nested groups inside their parent), each
    group placed where its first task comes in dependency order; and the groups, parents first."""
    raw_groups = data.get("task_groups") or {}
    groups = [
        GridGroup(gid, (g or {}).get("parent"), str((g or {}).get("tooltip") or "")) for gid, g in raw_groups.items()
    ]
    known = {g.group_id for g in groups}
    children: dict[str | None, list[tuple[str, str]]] = {}
    placed: set[str] = set()
    tasks: dict[str, GridTask] = {}
    for raw in data["tasks"]:
        group = raw.get("task_group") if raw.get("task_group") in known else None
        task = GridTask(raw["task_id"], group, bool(raw.get("expand")) or bool(raw.get("is_mapped")), raw["operator"])
        tasks[task.task_id] = task
        _place(children, placed, raw_groups, ("task", task.task_id), group)
    ordered: list[GridTask] = []
    stack: list[tuple[str, str]] = list(reversed(children.get(None, [])))
    while stack:  # bounded: each task and group is pushed once
        kind, name = stack.pop()
        if kind == "task":
            ordered.append(tasks[name])
        else:
            stack.extend(reversed(children.get(name, [])))
    return ordered, sorted(groups, key=lambda g: g.group_id.count("."))


def _place(
    children: dict[str | None, list[tuple[str, str]]],
    placed: set[str],
    raw_groups: dict[str, Any],
    item: tuple[str, str],
    parent: str | None,
) -> None:
    """Append ``item`` under ``parent``, and each ancestor group not placed yet under its own parent."""
    for _ in range(len(raw_groups) + 1):  # bounded by the depth of the groups, even for a corrupt cycle
        children.setdefault(parent, []).append(item)
        if parent is None or parent in placed:
            return
        placed.add(parent)
        item = ("group", parent)
        grand = (raw_groups.get(parent) or {}).get("parent")
        parent = grand if grand in raw_groups else None


def grid_page(engine: Any, dag_id: str, *, before: int | None = None, limit: int = 25) -> GridPage:
    """One page of the grid: at most ``limit`` runs older than run ``before`` (the page's cursor), newest
    first. :class:`~zonda.exceptions.DagNotFound` when the DAG has not been serialized."""
    with engine.connect() as conn:
        return runs_of(conn, dag_id, serialized_data(conn, dag_id), before=before, limit=limit)


def serialized_data(conn: Any, dag_id: str) -> dict[str, Any]:
    """The stored structure of ``dag_id`` as plain data (tasks are not built: the grid reads ids and groups)."""
    text = conn.execute(select(t.serialized_dag.c.data).where(t.serialized_dag.c.dag_id == dag_id)).scalar()
    if text is None:
        raise unknown_dag(conn, dag_id)
    return decode_serialized(text)


def runs_of(conn: Any, dag_id: str, data: dict[str, Any], *, before: int | None, limit: int) -> GridPage:
    """:func:`grid_page` for a DAG whose stored ``data`` is already read, on the caller's connection (two
    statements)."""
    limit = max(1, min(int(limit), MAX_PAGE))
    dr, ti = t.dag_run, t.task_instance
    query = select(dr.c.id, dr.c.run_id, dr.c.logical_date, dr.c.state, dr.c.run_type).where(dr.c.dag_id == dag_id)
    if before is not None:
        anchor = select(dr.c.logical_date).where(dr.c.id == before, dr.c.dag_id == dag_id).scalar_subquery()
        query = query.where(or_(dr.c.logical_date < anchor, and_(dr.c.logical_date == anchor, dr.c.id < before)))
    runs = conn.execute(query.order_by(dr.c.logical_date.desc(), dr.c.id.desc()).limit(limit + 1)).all()
    more = len(runs) > limit
    runs = runs[:limit]
    tasks, groups = tree_order(data)
    rows = []
    if runs:
        rows = conn.execute(
            select(ti.c.dag_run_id, ti.c.task_id, ti.c.state, func.count())
            .where(ti.c.dag_run_id.in_([run.id for run in runs]))
            .group_by(ti.c.dag_run_id, ti.c.task_id, ti.c.state)
        ).all()
    return GridPage(dag_id, tasks, groups, _grid_runs(runs, tasks, rows), runs[-1].id if more else None)


def _grid_runs(runs: list[Any], tasks: list[GridTask], rows: list[Any]) -> list[GridRun]:
    """Fold (run, task, state, count) rows into a letter per task per run, and counts for mapped tasks.

    The hot loop of a big grid (25,000 rows for 1,000 tasks x 25 runs): an unmapped task has one row per run
    and just sets its letter; only mapped tasks (and leftovers of a task that was mapped once) keep counts."""
    index_of = {task.task_id: i for i, task in enumerate(tasks)}
    is_mapped = [task.is_mapped for task in tasks]
    letters = {run.id: [NO_INSTANCE] * len(tasks) for run in runs}
    several: dict[int, dict[int, dict[str, int]]] = {run.id: {} for run in runs}
    for run_pk, task_id, stored_state, count in rows:
        index = index_of.get(task_id)
        if index is None:  # instances of a task since removed from the DAG are not shown
            continue
        state = stored_state or "none"
        line = letters[run_pk]
        if is_mapped[index] or line[index] != NO_INSTANCE:
            found = several[run_pk].setdefault(index, {})
            if not found and line[index] != NO_INSTANCE:
                found[_STATE_OF_CODE[line[index]]] = 1
            found[state] = found.get(state, 0) + count
            line[index] = STATE_CODES.get(summary_state(found), "-")
        else:
            line[index] = STATE_CODES.get(state, "-")
    return [
        GridRun(
            run.id,
            run.run_id,
            run.logical_date,
            run.state,
            run.run_type,
            "".join(letters[run.id]),
            {index: found for index, found in several[run.id].items() if is_mapped[index]},
        )
        for run in runs
    ]


__all__ = [
    "NO_INSTANCE",
    "STATE_CODES",
    "GridGroup",
    "GridPage",
    "GridRun",
    "GridTask",
    "grid_page",
    "runs_of",
    "serialized_data",
    "summary_state",
    "tree_order",
]
