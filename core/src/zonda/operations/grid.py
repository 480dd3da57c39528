"""The grid of one DAG: its runs (newest first, a page at a time) against its tasks, as compact data.

Called by the web server's grid and graph endpoints. A page costs three statements whatever the number of tasks
or runs: the serialized DAG, one page of runs (keyset on logical date then id, so page 400 costs what page 1
does), and the task-instance states of those runs counted per task and state (a mapped task's thousand
instances arrive as a few counts, not a thousand rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from zonda.metastore import tables as t
from zonda.scheduler.runs import load_serialized
from zonda.scheduler.serialized import SerializedDag

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


def tree_order(sdag: SerializedDag) -> tuple[list[GridTask], list[GridGroup]]:
    """Tasks ordered so that every group's members are adjacent (nested groups inside their parent), each
    group placed where its first task comes in dependency order; and the groups, parents first."""
    raw_groups = sdag.data.get("task_groups") or {}
    groups = [
        GridGroup(gid, (g or {}).get("parent"), str((g or {}).get("tooltip") or "")) for gid, g in raw_groups.items()
    ]
    known = {g.group_id for g in groups}
    children: dict[str | None, list[tuple[str, str]]] = {}
    tasks: dict[str, GridTask] = {}
    for raw in sdag.data["tasks"]:
        group = raw.get("task_group") if raw.get("task_group") in known else None
        task = GridTask(raw["task_id"], group, bool(raw.get("expand")) or bool(raw.get("is_mapped")), raw["operator"])
        tasks[task.task_id] = task
        _place(children, raw_groups, known, ("task", task.task_id), group)
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
    raw_groups: dict[str, Any],
    known: set[str],
    item: tuple[str, str],
    parent: str | None,
) -> None:
    """Append ``item`` under ``parent``, and each not yet placed ancestor group under its own parent."""
    for _ in range(len(known) + 1):
        siblings = children.setdefault(parent, [])
        if item in siblings:
            return
        siblings.append(item)
        if parent is None:
            return
        item = ("group", parent)
        grand = (raw_groups.get(parent) or {}).get("parent")
        parent = grand if grand in known else None


def grid_page(engine: Any, dag_id: str, *, before: int | None = None, limit: int = 25) -> GridPage:
    """One page of the grid: at most ``limit`` runs older than run ``before`` (the page's cursor), newest
    first. :class:`~zonda.exceptions.DagNotFound` when the DAG has not been serialized."""
    with engine.connect() as conn:
        sdag = load_serialized(conn, dag_id)
        return runs_of(conn, sdag, before=before, limit=limit)


def runs_of(conn: Any, sdag: SerializedDag, *, before: int | None, limit: int) -> GridPage:
    """:func:`grid_page` for a DAG already loaded, on the caller's connection (two statements)."""
    limit = max(1, min(int(limit), MAX_PAGE))
    dr, ti = t.dag_run, t.task_instance
    query = select(dr.c.id, dr.c.run_id, dr.c.logical_date, dr.c.state, dr.c.run_type).where(dr.c.dag_id == sdag.dag_id)
    if before is not None:
        anchor = select(dr.c.logical_date).where(dr.c.id == before, dr.c.dag_id == sdag.dag_id).scalar_subquery()
        query = query.where(or_(dr.c.logical_date < anchor, and_(dr.c.logical_date == anchor, dr.c.id < before)))
    runs = conn.execute(query.order_by(dr.c.logical_date.desc(), dr.c.id.desc()).limit(limit + 1)).all()
    more = len(runs) > limit
    runs = runs[:limit]
    counts: dict[int, dict[str, dict[str, int]]] = {}
    if runs:
        rows = conn.execute(
            select(ti.c.dag_run_id, ti.c.task_id, ti.c.state, func.count())
            .where(ti.c.dag_run_id.in_([r.id for r in runs]))
            .group_by(ti.c.dag_run_id, ti.c.task_id, ti.c.state)
        )
        for run_pk, task_id, state, count in rows:
            counts.setdefault(run_pk, {}).setdefault(task_id, {})[state or "none"] = count
    tasks, groups = tree_order(sdag)
    grid_runs = [_grid_run(run, tasks, counts.get(run.id, {})) for run in runs]
    return GridPage(sdag.dag_id, tasks, groups, grid_runs, runs[-1].id if more else None)


def _grid_run(run: Any, tasks: list[GridTask], by_task: dict[str, dict[str, int]]) -> GridRun:
    letters = []
    mapped: dict[int, dict[str, int]] = {}
    for index, task in enumerate(tasks):
        found = by_task.get(task.task_id)
        if not found:
            letters.append(NO_INSTANCE)
            continue
        letters.append(STATE_CODES.get(summary_state(found), "-"))
        if task.is_mapped:
            mapped[index] = found
    return GridRun(run.id, run.run_id, run.logical_date, run.state, run.run_type, "".join(letters), mapped)


__all__ = [
    "NO_INSTANCE",
    "STATE_CODES",
    "GridGroup",
    "GridPage",
    "GridRun",
    "GridTask",
    "grid_page",
    "runs_of",
    "summary_state",
    "tree_order",
]
