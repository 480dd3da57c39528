"""What setup and teardown roles change in a DAG run, with Airflow 3's rules, over the decision engine's shape.

- A teardown (trigger rule ``all_done_setup_success``) runs once every upstream task is done and at least one of
  its setups succeeded; it is skipped when all its setups were skipped, and ``upstream_failed`` when none
  succeeded. It also waits for every task *between* its setups and itself (its "scope"), not only for its direct
  upstream tasks.
- A work task waits for its relevant setups that are not its direct upstream (a setup whose teardown is
  downstream of the task, or a setup without teardown): one failed makes it ``upstream_failed``, one skipped makes
  it ``skipped``, as if the setup were its direct upstream.
- The run's final state ignores teardowns: a teardown's failure fails the run only with
  ``on_failure_fail_dagrun=True``, and a task whose only downstream tasks are such teardowns counts as a leaf.
- Clearing a work task (without its upstream) also clears its relevant setups and their teardowns, and clearing
  a setup alone also clears its teardowns, so the resource is made again and removed again.

Everything here is pure and works on task ids, so the scheduler (serialized DAG), ``dags test`` (DAG object) and
the operations layer's clear share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from zonda.runner.trigger_rules import Decision
from zonda.state import FAILED_STATES, FINISHED_STATES, TaskInstanceState


class _Task(Protocol):
    upstream: frozenset[str]
    downstream: frozenset[str]
    is_setup: bool
    is_teardown: bool
    on_failure_fail_dagrun: bool


def _relatives(tasks: Mapping[str, _Task], task_id: str, attribute: str) -> set[str]:
    found: set[str] = set()
    stack = list(getattr(tasks[task_id], attribute))
    while stack:
        other = stack.pop()
        if other not in found and other in tasks:
            found.add(other)
            stack.extend(getattr(tasks[other], attribute))
    return found


def relevant_setups_and_teardowns(tasks: Mapping[str, _Task], task_id: str) -> list[str]:
    """Airflow's ``get_upstreams_only_setups_and_teardowns``: the upstream setups whose teardown is downstream of
    the task (or that have no teardown), each followed by its teardowns."""
    below = _relatives(tasks, task_id, "downstream")
    downstream_teardowns = {t for t in below if tasks[t].is_teardown}
    found: list[str] = []
    for up_id in sorted(_relatives(tasks, task_id, "upstream")):
        up = tasks[up_id]
        if not up.is_setup:
            continue
        teardowns = sorted(t for t in up.downstream if tasks[t].is_teardown)
        if not teardowns or up.downstream & downstream_teardowns:
            found.append(up_id)
            found.extend(t for t in teardowns if t != task_id)
    return found


@dataclass(frozen=True)
class Constraints:
    """Per task: the indirect setups it waits for (work tasks), or the scope it waits for (teardowns)."""

    indirect_setups: Mapping[str, frozenset[str]]
    scope: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, tasks: Mapping[str, _Task]) -> Constraints | None:
        """None when the DAG has no setup and no teardown: nothing changes, nothing is computed."""
        if not any(t.is_setup or t.is_teardown for t in tasks.values()):
            return None
        indirect: dict[str, frozenset[str]] = {}
        scope: dict[str, frozenset[str]] = {}
        for task_id, task in tasks.items():
            if task.is_teardown:
                above = _relatives(tasks, task_id, "upstream") - task.upstream
                setups = [s for s in task.upstream if tasks[s].is_setup]
                inside = set().union(*(_relatives(tasks, s, "downstream") for s in setups)) if setups else set()
                if above & inside:
                    scope[task_id] = frozenset(above & inside)
            else:
                setups = {s for s in relevant_setups_and_teardowns(tasks, task_id) if tasks[s].is_setup}
                if setups - task.upstream:
                    indirect[task_id] = frozenset(setups - task.upstream)
        return cls(indirect_setups=indirect, scope=scope)

    def apply(self, task_id: str, decision: Decision, states_of: Callable[[str], Sequence[Any]]) -> Decision:
        """The decision from the task's direct upstream, corrected by its setups or its teardown scope."""
        setups = self.indirect_setups.get(task_id)
        if setups:
            states = [_plain(s) for setup_id in setups for s in states_of(setup_id)]
            if any(s in FAILED_STATES for s in states):
                return Decision.UPSTREAM_FAILED
            if TaskInstanceState.SKIPPED.value in states:
                return Decision.SKIP
            if decision is Decision.RUN and any(s != TaskInstanceState.SUCCESS.value for s in states):
                return Decision.WAIT
        scope = self.scope.get(task_id)
        if (
            scope
            and decision is Decision.RUN
            and not all(_plain(s) in FINISHED_STATES for t in scope for s in states_of(t))
        ):
            return Decision.WAIT
        return decision


def _plain(state: Any) -> str | None:
    return None if state is None or str(state) == "none" else str(state)


def effective_leaves(tasks: Mapping[str, _Task]) -> list[str]:
    """The tasks whose states decide whether the run failed, as Airflow's ``_tis_for_dagrun_state``: leaves,
    where a teardown that may not fail the run is not a leaf and does not stop its upstream from being one."""

    def ignorable(task_id: str) -> bool:
        task = tasks[task_id]
        return task.is_teardown and not task.on_failure_fail_dagrun

    found = [
        task_id
        for task_id, task in tasks.items()
        if not ignorable(task_id) and all(ignorable(d) for d in task.downstream if d in tasks)
    ]
    return found or [task_id for task_id, task in tasks.items() if not task.downstream]


def also_cleared(tasks: Mapping[str, _Task], selected: Iterable[str], *, upstream: bool, downstream: bool) -> set[str]:
    """The setups and teardowns a clear of ``selected`` brings along (Airflow's ``partial_subset``)."""
    extra: set[str] = set()
    for task_id in selected:
        task = tasks[task_id]
        if downstream:
            for below in _relatives(tasks, task_id, "downstream"):
                if not tasks[below].is_setup and not tasks[below].is_teardown:
                    extra.update(relevant_setups_and_teardowns(tasks, below))
        if upstream:
            for above in _relatives(tasks, task_id, "upstream"):
                if tasks[above].is_setup:
                    extra.update(t for t in tasks[above].downstream if tasks[t].is_teardown and t != task_id)
        elif not task.is_setup and not task.is_teardown:
            extra.update(relevant_setups_and_teardowns(tasks, task_id))
        if task.is_setup and not downstream:
            extra.update(t for t in task.downstream if tasks[t].is_teardown)
    return extra
