"""Clearing task instances and marking them success or failed: what ``zonda tasks clear``, and later the UI and
the REST API, ask for.

A :class:`Selection` names task instances the way Airflow users do: a DAG, some of its tasks (ids or a regular
expression), some runs (ids or a logical-date window), and the options ``upstream`` / ``downstream`` (the
tasks' relatives too), ``past`` / ``future`` (the same tasks in every earlier / later run) and ``only_failed``.
Every operation takes ``dry_run``: it then returns what it would change and writes nothing. The writes go
through :mod:`zonda.operations.transitions`, each a compare-and-set on the state the operation read, so an
instance that changed in between is left alone and counted in ``changed_meanwhile``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from zonda.exceptions import ZondaException
from zonda.metastore import tables as t
from zonda.operations import transitions
from zonda.operations.transitions import Seen
from zonda.state import FAILED_STATES, DagRunState, TaskInstanceState, one_of
from zonda.timezone import utcnow

#: Runs ``zonda dags test`` (or ``zonda.testing.run_dag``) runs in its own process; a scheduler leaves them alone.
IN_PROCESS_RUN_TYPE = "test"


@dataclass(frozen=True)
class Selection:
    """Which task instances of one DAG an operation acts on (Airflow's clear / mark options)."""

    dag_id: str
    task_ids: Collection[str] | None = None
    """Exact task ids (None: every task, unless ``task_regex`` narrows it)."""
    task_regex: str | None = None
    """Only tasks whose id matches (``re.search``)."""
    run_ids: Collection[str] | None = None
    start_date: datetime | None = None
    """Only runs with a logical date on or after this."""
    end_date: datetime | None = None
    """Only runs with a logical date on or before this."""
    map_indexes: Collection[int] | None = None
    upstream: bool = False
    downstream: bool = False
    past: bool = False
    """Also the same tasks in every run before the latest selected one."""
    future: bool = False
    """Also the same tasks in every run after the earliest selected one."""
    only_failed: bool = False
    """Only instances that are failed or upstream_failed."""


@dataclass(frozen=True)
class InstanceRow:
    """One selected task instance, as read."""

    id: int
    dag_run_id: int
    run_id: str
    task_id: str
    map_index: int
    state: TaskInstanceState
    try_number: int
    logical_date: datetime | None

    @property
    def label(self) -> str:
        suffix = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.task_id}{suffix} in {self.run_id}"


@dataclass
class Outcome:
    """What an operation changed (or, with ``dry_run``, would change)."""

    instances: list[InstanceRow] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    """Run ids whose state changes (queued again, by a clear)."""
    handed_to_scheduler: list[str] = field(default_factory=list)
    """Runs ``zonda dags test`` made that become manual runs, so the scheduler runs them again."""
    dry_run: bool = False
    changed: int = 0
    changed_meanwhile: int = 0
    """Instances whose state changed between reading and writing: left alone."""
    dag_paused: bool = False


# --- selecting ------------------------------------------------------------------------------------------------


def select_task_instances(
    conn: Any, selection: Selection, *, setups_and_teardowns: bool = False
) -> tuple[Any, list[InstanceRow]]:
    """The serialized DAG and the instances ``selection`` names, in logical-date, task and map-index order.
    Unknown DAGs, tasks and runs, and a regular expression that is invalid or matches nothing, raise.
    ``setups_and_teardowns``: also the setups and teardowns a clear brings along (Airflow's rule, see
    :func:`zonda.setup_teardown_graph.also_cleared`)."""
    from zonda.scheduler.runs import load_serialized

    sdag = load_serialized(conn, selection.dag_id)
    task_ids = _task_ids(sdag, selection)
    if setups_and_teardowns and sdag.shape.constraints is not None:
        from zonda.setup_teardown_graph import also_cleared

        roots = _selected_roots(sdag, selection)
        task_ids |= also_cleared(sdag.shape.tasks, roots, upstream=selection.upstream, downstream=selection.downstream)
    ti, dr = t.task_instance, t.dag_run
    query = (
        select(
            ti.c.id,
            ti.c.dag_run_id,
            ti.c.run_id,
            ti.c.task_id,
            ti.c.map_index,
            ti.c.state,
            ti.c.try_number,
            dr.c.logical_date,
        )
        .join(dr, dr.c.id == ti.c.dag_run_id)
        .where(ti.c.dag_id == selection.dag_id, ti.c.task_id.in_(sorted(task_ids)))
    )
    window = _run_window(conn, selection)
    if window is not None:
        query = query.where(window)
    if selection.map_indexes is not None:
        query = query.where(ti.c.map_index.in_(sorted(selection.map_indexes)))
    if selection.only_failed:
        query = query.where(ti.c.state.in_(sorted(s.value for s in FAILED_STATES)))
    rows = conn.execute(query.order_by(dr.c.logical_date, dr.c.id, ti.c.task_id, ti.c.map_index)).all()
    return sdag, [
        InstanceRow(
            r.id,
            r.dag_run_id,
            r.run_id,
            r.task_id,
            r.map_index,
            transitions.as_ti_state(r.state),
            int(r.try_number or 0),
            r.logical_date,
        )
        for r in rows
    ]


def _task_ids(sdag: Any, selection: Selection) -> set[str]:
    roots = _selected_roots(sdag, selection)
    task_ids = set(roots)
    if selection.downstream:
        task_ids |= _related(sdag, roots, "downstream")
    if selection.upstream:
        task_ids |= _related(sdag, roots, "upstream")
    return task_ids


def _selected_roots(sdag: Any, selection: Selection) -> set[str]:
    """The tasks the selection names itself (ids, regex), before upstream / downstream are added."""
    from zonda.suggestions import unknown_name

    dag_id = selection.dag_id
    task_ids = set(sdag.tasks)
    if selection.task_ids is not None:
        for task_id in selection.task_ids:
            if task_id not in sdag.tasks:
                raise ZondaException(
                    unknown_name(
                        f"DAG {dag_id!r} has no task {task_id!r}",
                        task_id,
                        sdag.tasks,
                        f"`zonda tasks list {dag_id}` lists them",
                    )
                )
        task_ids = set(selection.task_ids)
    if selection.task_regex:
        try:
            pattern = re.compile(selection.task_regex)
        except re.error as exc:
            raise ZondaException(
                f"--task-regex {selection.task_regex!r} is not a valid regular expression: {exc}"
            ) from None
        task_ids = {task_id for task_id in task_ids if pattern.search(task_id)}
        if not task_ids:
            # A regex that matches nothing is most often a task id with a typo: compare its letters.
            raise ZondaException(
                unknown_name(
                    f"no task of DAG {dag_id!r} matches {selection.task_regex!r}",
                    selection.task_regex.strip("^$"),
                    sdag.tasks,
                    f"`zonda tasks list {dag_id}` lists them",
                )
            )
    return set(task_ids)


def _related(sdag: Any, roots: set[str], attribute: str) -> set[str]:
    """Every task reachable from ``roots`` through ``upstream`` or ``downstream`` edges."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for other in getattr(sdag.tasks[todo.pop()], attribute):
            if other not in seen and other in sdag.tasks:
                seen.add(other)
                todo.append(other)
    return seen


def _run_window(conn: Any, selection: Selection) -> Any:
    """The ``dag_run`` condition of the selection (None: every run)."""
    from sqlalchemy import and_

    dr = t.dag_run
    parts = []
    if selection.run_ids is not None:
        run_ids = sorted(set(selection.run_ids))
        found = {
            r[0]
            for r in conn.execute(select(dr.c.run_id).where(dr.c.dag_id == selection.dag_id, dr.c.run_id.in_(run_ids)))
        }
        missing = [run_id for run_id in run_ids if run_id not in found]
        if missing:
            raise ZondaException(
                f"DAG {selection.dag_id!r} has no run {missing[0]!r}; "
                f"`zonda dags list-runs {selection.dag_id}` lists its runs"
            )
        parts.append(dr.c.run_id.in_(run_ids))
    if selection.start_date is not None:
        parts.append(dr.c.logical_date >= selection.start_date)
    if selection.end_date is not None:
        parts.append(dr.c.logical_date <= selection.end_date)
    if not parts:
        return None
    chosen = and_(*parts)
    if not (selection.past or selection.future):
        return chosen
    # Past / future: from the selected runs' dates on to the first / last run of the DAG.
    dates = [
        r[0]
        for r in conn.execute(select(dr.c.logical_date).where(dr.c.dag_id == selection.dag_id, chosen))
        if r[0] is not None
    ]
    if not dates:
        return chosen
    window = [dr.c.logical_date <= max(dates)] if not selection.future else [dr.c.logical_date >= min(dates)]
    if selection.past and selection.future:
        window = [dr.c.logical_date.is_not(None)]
    return chosen | and_(*window)


# --- clearing -------------------------------------------------------------------------------------------------


def clear_task_instances(engine: Any, selection: Selection, *, dry_run: bool = False) -> Outcome:
    """Reset the selected instances so the scheduler runs them again and queue their runs again.

    As Airflow: the tries already made stay counted and each task gets its retries again; a mapped task cleared
    with an upstream task folds back into one instance and expands again from the new upstream result. A run
    ``zonda dags test`` made and ended becomes a manual run (the scheduler leaves "test" runs to their own
    process); one it is still running is refused, since clearing it would run its tasks twice. Clearing a
    work task also clears its setups and their teardowns, as in Airflow, so the resource it needs is made
    again and removed again."""
    with engine.connect() as conn:
        sdag, rows = select_task_instances(conn, selection, setups_and_teardowns=True)
        outcome = Outcome(instances=rows, dry_run=dry_run)
        if not rows:
            return outcome
        runs = _runs_of(conn, rows)
        outcome.dag_paused = bool(
            conn.execute(select(t.dag.c.is_paused).where(t.dag.c.dag_id == selection.dag_id)).scalar()
        )
    in_process = [r for r in runs if r.run_type == IN_PROCESS_RUN_TYPE]
    _refuse_running_test_runs(selection.dag_id, in_process, "cleared")
    outcome.runs = [r.run_id for r in runs]
    outcome.handed_to_scheduler = [r.run_id for r in in_process]
    if dry_run:
        return outcome
    now = utcnow()
    cleared_tasks = {r.task_id for r in rows}
    with engine.begin() as conn:
        pairs = [(Seen(r.id, r.state, r.try_number), _retries(sdag, r.task_id)) for r in rows]
        outcome.changed = transitions.clear_tis(conn, pairs, now=now)
        outcome.changed_meanwhile = len(rows) - outcome.changed
        _collapse_mapped(conn, sdag, rows, cleared_tasks)
        transitions.requeue_runs(conn, [(r.id, DagRunState(r.state)) for r in runs], now=now)
        hand_to_scheduler(conn, [r.id for r in in_process])
    return outcome


def _retries(sdag: Any, task_id: str) -> int:
    task = sdag.tasks.get(task_id)
    return int(task.retries) if task is not None else 0


def _runs_of(conn: Any, rows: Sequence[InstanceRow]) -> list[Any]:
    dr = t.dag_run
    ids = sorted({r.dag_run_id for r in rows})
    return conn.execute(
        select(dr.c.id, dr.c.run_id, dr.c.run_type, dr.c.state)
        .where(dr.c.id.in_(ids))
        .order_by(dr.c.logical_date, dr.c.id)
    ).all()


def hand_to_scheduler(conn: Any, dag_run_ids: Sequence[int]) -> None:
    """Runs ``zonda dags test`` made become manual runs, which the scheduler runs like any other (its run
    type changes; its state is the transitions' business)."""
    if dag_run_ids:
        dr = t.dag_run
        conn.execute(update(dr).where(dr.c.id.in_(list(dag_run_ids))).values(run_type="manual", external_trigger=True))


def _refuse_running_test_runs(dag_id: str, in_process: Sequence[Any], done: str) -> None:
    """A run `zonda dags test` is still running belongs to that process: changing it would run its tasks
    twice."""
    running = [r for r in in_process if r.state == DagRunState.RUNNING]
    if running:
        raise ZondaException(
            f"run {running[0].run_id!r} of {dag_id} is being run by `zonda dags test` in another process, so "
            f"nothing was {done}; wait for it to end (or, if that process was stopped, rerun the whole run with "
            f"`zonda dags test {dag_id} LOGICAL_DATE`), or leave it out with --run-id / --start-date"
        )


def _collapse_mapped(conn: Any, sdag: Any, rows: Sequence[InstanceRow], cleared_tasks: set[str]) -> None:
    """A mapped task cleared together with an upstream task is expanded again from the new upstream result
    (its instances fold back into one unexpanded instance), as Airflow re-expands it."""
    ti = t.task_instance
    by_run_task: dict[tuple[int, str], list[InstanceRow]] = {}
    for row in rows:
        by_run_task.setdefault((row.dag_run_id, row.task_id), []).append(row)
    for (dag_run_id, task_id), cleared in by_run_task.items():
        task = sdag.tasks.get(task_id)
        if task is None or not task.is_mapped or not (task.upstream & cleared_tasks):
            continue
        total = conn.execute(select(ti.c.id).where(ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id)).all()
        if len(total) != len(cleared):
            continue  # only some instances were cleared: keep the expansion
        conn.execute(delete(ti).where(ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id, ti.c.map_index > 0))
        conn.execute(delete(t.xcom).where(t.xcom.c.dag_run_id == dag_run_id, t.xcom.c.task_id == task_id))
        conn.execute(
            update(ti)
            .where(ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id, ti.c.map_index == 0)
            .values(map_index=-1)
        )


# --- marking ----------------------------------------------------------------------------------------------------

MARKABLE_STATES = (TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.SKIPPED)


def mark_task_instances(
    engine: Any, selection: Selection, state: TaskInstanceState | str, *, dry_run: bool = False
) -> Outcome:
    """Set the selected instances to ``state`` (success, failed or skipped), except those already in it.

    Their runs keep their state (as in Airflow: a running run is decided again by the scheduler; clear or set a
    finished run's state to run it again). A running instance's task process notices at its next heartbeat that
    it no longer owns the row, stops, and records nothing. Runs ``zonda dags test`` is running are refused."""
    target = _markable(state)
    with engine.connect() as conn:
        _, rows = select_task_instances(conn, selection)
        rows = [r for r in rows if r.state is not target]
        outcome = Outcome(instances=rows, dry_run=dry_run)
        if not rows:
            return outcome
        runs = _runs_of(conn, rows)
    _refuse_running_test_runs(selection.dag_id, [r for r in runs if r.run_type == IN_PROCESS_RUN_TYPE], "marked")
    if dry_run:
        return outcome
    with engine.begin() as conn:
        outcome.changed = transitions.mark_tis(conn, [Seen(r.id, r.state) for r in rows], target, now=utcnow())
    outcome.changed_meanwhile = len(rows) - outcome.changed
    return outcome


def _markable(state: TaskInstanceState | str) -> TaskInstanceState:
    try:
        return one_of(TaskInstanceState, state, MARKABLE_STATES, "task instances can be marked")
    except ValueError as exc:
        raise ZondaException(str(exc)) from None
