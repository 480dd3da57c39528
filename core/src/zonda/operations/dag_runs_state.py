"""Setting DAG runs' states by hand, with their task instances, as Airflow's "mark run as success / failed /
queued" does. Bulk: one call takes many runs of one DAG.

- success: every instance of the run that is not already successful is marked success, then the run.
- failed: instances that are running (or deferred, or waiting for a reschedule) are marked failed, those that
  have not started are skipped, finished ones stay; then the run.
- queued: only the run; the scheduler starts it again and decides it from its instances' states (clear
  instances to run them again).

Each write is a compare-and-set on the state read (:mod:`zonda.operations.transitions`). Runs that
``zonda dags test`` is still running are refused (that process owns them); one it ended and that is set back
to queued becomes a manual run, which the scheduler runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from zonda.exceptions import ZondaException
from zonda.metastore import tables as t
from zonda.operations import transitions
from zonda.operations.dags import require_dag
from zonda.operations.task_instances import IN_PROCESS_RUN_TYPE, hand_to_scheduler
from zonda.operations.transitions import Seen
from zonda.state import FINISHED_STATES, DagRunState, TaskInstanceState, one_of
from zonda.timezone import utcnow

SETTABLE_RUN_STATES = (DagRunState.QUEUED, DagRunState.SUCCESS, DagRunState.FAILED)
#: Instances that hold (or held until a trigger fires or a poke is due) a try: marking a run failed fails them.
_IN_A_TRY = (TaskInstanceState.RUNNING, TaskInstanceState.DEFERRED, TaskInstanceState.UP_FOR_RESCHEDULE)


@dataclass
class RunChange:
    """One run: its state before, and the instance changes setting its state makes."""

    run_id: str
    previous: DagRunState
    instances: list[tuple[str, int, TaskInstanceState, TaskInstanceState]] = field(default_factory=list)
    """(task id, map index, from, to) for each instance that changes."""
    changed: bool = False


@dataclass
class RunStateOutcome:
    state: DagRunState
    runs: list[RunChange] = field(default_factory=list)
    dry_run: bool = False
    changed_meanwhile: int = 0
    """Runs or instances whose state changed between reading and writing: left alone."""


def set_dag_runs_state(
    engine: Any, dag_id: str, run_ids: Sequence[str], state: DagRunState | str, *, dry_run: bool = False
) -> RunStateOutcome:
    """Set each run of ``run_ids`` to ``state`` (queued, success or failed), with its task instances as
    described in the module docstring. Runs already in ``state`` are left alone. ``dry_run``: only report."""
    target = _settable(state)
    if not run_ids:
        raise ZondaException("name at least one run id")
    dr, ti = t.dag_run, t.task_instance
    outcome = RunStateOutcome(state=target, dry_run=dry_run)
    with engine.connect() as conn:
        runs = conn.execute(
            select(dr.c.id, dr.c.run_id, dr.c.state, dr.c.run_type).where(
                dr.c.dag_id == dag_id, dr.c.run_id.in_(sorted(set(run_ids)))
            )
        ).all()
        _check_found(conn, dag_id, run_ids, {r.run_id for r in runs})
        running_tests = [r for r in runs if r.run_type == IN_PROCESS_RUN_TYPE and r.state == DagRunState.RUNNING]
        if running_tests:
            raise ZondaException(
                f"run {running_tests[0].run_id!r} of {dag_id} is being run by `zonda dags test` in another "
                "process, so nothing was changed; wait for it to end"
            )
        plans = []
        for run in sorted(runs, key=lambda r: r.id):
            if run.state == target:
                continue
            instances = conn.execute(
                select(ti.c.id, ti.c.task_id, ti.c.map_index, ti.c.state).where(ti.c.dag_run_id == run.id)
            ).all()
            change = RunChange(run.run_id, DagRunState(run.state))
            moves = []
            for inst in sorted(instances, key=lambda i: (i.task_id, i.map_index)):
                seen = transitions.as_ti_state(inst.state)
                to = _instance_target(target, seen)
                if to is not None:
                    change.instances.append((inst.task_id, inst.map_index, seen, to))
                    moves.append((Seen(inst.id, seen), to))
            outcome.runs.append(change)
            plans.append((run, change, moves))
    if dry_run or not plans:
        return outcome
    now = utcnow()
    with engine.begin() as conn:
        for run, change, moves in plans:
            for to in {to for _, to in moves}:
                group = [seen for seen, target_state in moves if target_state is to]
                changed = transitions.mark_tis(conn, group, to, now=now)
                outcome.changed_meanwhile += len(group) - changed
            change.changed = bool(transitions.set_run_state(conn, run.id, target, seen=DagRunState(run.state), now=now))
            if not change.changed:
                outcome.changed_meanwhile += 1
            elif target is DagRunState.QUEUED and run.run_type == IN_PROCESS_RUN_TYPE:
                hand_to_scheduler(conn, [run.id])
    return outcome


def _instance_target(run_state: DagRunState, seen: TaskInstanceState) -> TaskInstanceState | None:
    if run_state is DagRunState.SUCCESS:
        return None if seen is TaskInstanceState.SUCCESS else TaskInstanceState.SUCCESS
    if run_state is DagRunState.FAILED:
        if seen in _IN_A_TRY:
            return TaskInstanceState.FAILED
        return None if seen in FINISHED_STATES else TaskInstanceState.SKIPPED
    return None


def _settable(state: DagRunState | str) -> DagRunState:
    try:
        return one_of(DagRunState, state, SETTABLE_RUN_STATES, "a DAG run's state can be set to")
    except ValueError as exc:
        raise ZondaException(str(exc)) from None


def _check_found(conn: Any, dag_id: str, wanted: Sequence[str], found: set[str]) -> None:
    missing = [run_id for run_id in wanted if run_id not in found]
    if not missing:
        return
    require_dag(conn, dag_id)
    raise ZondaException(f"DAG {dag_id!r} has no run {missing[0]!r}; `zonda dags list-runs {dag_id}` lists its runs")
