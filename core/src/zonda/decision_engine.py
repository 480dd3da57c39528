"""The one decision engine of a DAG run: what may run next, what is settled without running, when the run ends.

``zonda dags test`` / ``zonda.testing.run_dag`` (:mod:`zonda.runner.dag_runner`) and the scheduler
(:mod:`zonda.scheduler.decisions`) both decide with these functions, so a DAG reaches the same final states
whichever runs it. Everything here is pure: it reads a :class:`DagShape` (each task's upstream ids, trigger rule,
mapping, priority) and the current states of the run's task instances, and returns decisions. Writing them (rows
in the metastore, or the in-process runner's instances) stays with the callers.

The rules, as in Airflow:

- A task is decided from the states of its upstream instances (:func:`zonda.runner.trigger_rules.evaluate`):
  run it, settle it ``skipped`` / ``upstream_failed``, or wait. ``always`` never waits, even for upstream tasks
  that have not started.
- Tasks are decided in dependency order, and a task settled in a pass is seen by its downstream tasks in the same
  pass (a skip or an upstream failure crosses a whole chain at once), together with every other upstream
  settled in that pass: a task is never decided from half of a pass.
- What runs next among ready instances: higher ``priority_weight`` first (the weight rule's total), then the
  order in which the instances were created (dependency order; expanded map indexes after them).
- A branch or short circuit skips the instances of its targets that have not started a try (see
  :data:`zonda.state.SKIPPABLE_STATES`).
- A run ends when every instance is finished: failed if a leaf instance failed or is upstream_failed, else
  success. Teardowns do not count as leaves unless they say ``on_failure_fail_dagrun``.
- Setups and teardowns add their own waits (see :mod:`zonda.setup_teardown_graph`).
- In a mapped task group, instance ``i`` of a task is decided from instance ``i`` of its upstream tasks in the
  same group (and every instance of the others), so one element's failure stays in its own lane. A task of
  the group expands (:data:`EXPAND`, instances left undecided) once an upstream task of its group has; the
  group's first tasks expand when their trigger rule lets them run, as a mapped task does.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zonda.runner.trigger_rules import Decision, UpstreamCounts, evaluate
from zonda.setup_teardown_graph import Constraints, effective_leaves
from zonda.state import FAILED_STATES, FINISHED_STATES, SKIPPABLE_STATES, TaskInstanceState
from zonda.trigger_rule import TriggerRule

#: A task instance state as either side holds it: the enum, its value, or None / "none" for "not decided yet".
State = TaskInstanceState | str | None

#: The decision "create this task's instances, one per element of its mapped group's input, undecided".
EXPAND = "expand"


def is_pending(state: State) -> bool:
    """Not decided yet (Airflow's ``None`` state)."""
    return state is None or state == TaskInstanceState.NONE


def is_finished(state: State) -> bool:
    return state is not None and str(state) in FINISHED_STATES


def is_skippable(state: State) -> bool:
    """Whether a branch's or short circuit's skip turns an instance in this state into ``skipped``."""
    return is_pending(state) or str(state) in SKIPPABLE_STATES


@dataclass(frozen=True)
class TaskShape:
    """What the engine needs to know about one task."""

    task_id: str
    upstream: frozenset[str]
    downstream: frozenset[str]
    trigger_rule: TriggerRule
    is_mapped: bool = False
    depends_on_past: bool = False
    #: ``priority_weight`` summed by the task's weight rule (see :func:`priority_weight_totals`).
    priority: int = 1
    is_setup: bool = False
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False
    #: The id of the mapped task group the task sits in, if any.
    mapped_group: str | None = None


class DagShape:
    """The tasks of a DAG in dependency order, from a DAG object or from the scheduler's serialized DAG."""

    def __init__(self, tasks: Iterable[TaskShape]) -> None:
        ordered = list(tasks)
        self.order = [task.task_id for task in ordered]
        self.tasks = {task.task_id: task for task in ordered}
        self.position = {task_id: i for i, task_id in enumerate(self.order)}
        #: What setups and teardowns add to the decisions; None for a DAG without them.
        self.constraints = Constraints.of(self.tasks)
        self.leaves = (
            effective_leaves(self.tasks) if self.constraints else [t.task_id for t in ordered if not t.downstream]
        )

    @classmethod
    def from_dag(cls, dag: Any) -> DagShape:
        order = dag.topological_order()
        totals = priority_weight_totals(
            {
                n.task_id: (
                    int(getattr(n, "priority_weight", 1) or 1),
                    str(getattr(n, "weight_rule", "downstream") or "downstream"),
                    n.upstream_task_ids,
                    n.downstream_task_ids,
                )
                for n in order
            }
        )
        return cls(
            TaskShape(
                task_id=n.task_id,
                upstream=frozenset(n.upstream_task_ids),
                downstream=frozenset(n.downstream_task_ids),
                trigger_rule=TriggerRule.parse(n.trigger_rule),
                is_mapped=bool(n.is_mapped),
                depends_on_past=bool(getattr(n, "depends_on_past", False)),
                priority=totals[n.task_id],
                is_setup=bool(getattr(n, "is_setup", False)),
                is_teardown=bool(getattr(n, "is_teardown", False)),
                on_failure_fail_dagrun=bool(getattr(n, "on_failure_fail_dagrun", False)),
                mapped_group=n.mapped_group.group_id if n.mapped_group is not None else None,
            )
            for n in order
        )

    @classmethod
    def from_serialized(cls, sdag: Any) -> DagShape:
        return cls(
            TaskShape(
                task_id=task_id,
                upstream=sdag.tasks[task_id].upstream,
                downstream=sdag.tasks[task_id].downstream,
                trigger_rule=sdag.tasks[task_id].trigger_rule,
                is_mapped=sdag.tasks[task_id].is_mapped,
                depends_on_past=sdag.tasks[task_id].depends_on_past,
                priority=sdag.tasks[task_id].priority_weight,
                is_setup=sdag.tasks[task_id].is_setup,
                is_teardown=sdag.tasks[task_id].is_teardown,
                on_failure_fail_dagrun=sdag.tasks[task_id].on_failure_fail_dagrun,
                mapped_group=sdag.tasks[task_id].mapped_group,
            )
            for task_id in sdag.order
        )


def priority_weight_totals(tasks: Mapping[str, tuple[int, str, Iterable[str], Iterable[str]]]) -> dict[str, int]:
    """Airflow's weight rules over ``task_id -> (priority_weight, weight_rule, upstream ids, downstream ids)``:
    ``downstream`` (the default) adds the weights of all descendants, ``upstream`` of all ancestors, ``absolute``
    keeps the task's own."""

    def relatives(task_id: str, index: int) -> set[str]:
        seen: set[str] = set()
        stack = list(tasks[task_id][index])  # type: ignore[call-overload]
        while stack:
            tid = stack.pop()
            if tid not in seen:
                seen.add(tid)
                stack.extend(tasks[tid][index])  # type: ignore[call-overload]
        return seen

    totals = {}
    for task_id, (own, rule, _, _) in tasks.items():
        if rule == "absolute":
            totals[task_id] = own
        else:
            index = 2 if rule == "upstream" else 3
            totals[task_id] = own + sum(tasks[t][0] for t in relatives(task_id, index))
    return totals


def decide(
    shape: DagShape, states_of: Callable[[str], Sequence[State]], candidates: Iterable[str] | None = None
) -> Iterator[tuple[str, Decision]]:
    """:func:`decide_instances` for a DAG without mapped task groups, whose decisions are per task."""
    for task_id, decision, _ in decide_instances(
        shape, lambda task_id: list(enumerate(states_of(task_id))), candidates
    ):
        yield task_id, decision  # type: ignore[misc]


#: One decision: ``(task_id, decision, map_index)``; ``map_index`` None means every pending instance.
InstanceDecision = tuple[str, "Decision | str", "int | None"]


def decide_instances(
    shape: DagShape,
    instances_of: Callable[[str], Sequence[tuple[int, State]]],
    candidates: Iterable[str] | None = None,
) -> Iterator[InstanceDecision]:
    """Walk the tasks that have a pending (undecided) instance in dependency order and yield
    ``(task_id, decision, map_index)`` for each that need not wait: ``RUN``, ``SKIP``, ``UPSTREAM_FAILED``
    (for every pending instance when ``map_index`` is None, else for that one), or :data:`EXPAND`.

    ``instances_of(task_id)`` gives ``(map_index, state)`` of a task's instances. The caller applies each
    decision (a run that is blocked by ``depends_on_past`` is left pending; a mapped task expands, maybe into
    nothing) before the walk goes on, so the tasks after it see its new states.

    ``candidates`` limits the walk to these tasks and, once one of them is settled, its downstream tasks: the
    in-process runner passes the downstream tasks of what just ended, and reaches the same decisions as a walk
    over every task (a task's decision depends only on its upstream instances' states). None walks every task.
    """
    position = shape.position
    constraints = shape.constraints
    if constraints is not None:
        candidates = None  # a teardown's scope and a task's indirect setups are not its direct upstream
    if candidates is None:
        heap = list(range(len(shape.order)))
    else:
        heap = sorted({position[task_id] for task_id in candidates})
    seen: set[int] = set()

    def states_of(task_id: str) -> list[State]:
        return [state for _, state in instances_of(task_id)]

    while heap:
        index = heapq.heappop(heap)
        if index in seen:
            continue
        seen.add(index)
        task = shape.tasks[shape.order[index]]
        if not any(is_pending(state) for state in states_of(task.task_id)):
            continue
        if task.mapped_group is not None:
            decided = yield from _decide_in_group(shape, task, instances_of)
        else:
            counts = UpstreamCounts.from_states(
                _plain(state) for upstream in task.upstream for state in states_of(upstream)
            )
            if constraints is not None:
                counts = counts.with_setups(
                    _plain(state) for up in task.upstream if shape.tasks[up].is_setup for state in states_of(up)
                )
            decision = evaluate(task.trigger_rule, counts)
            if constraints is not None:
                decision = constraints.apply(task.task_id, decision, states_of)
            decided = decision is not Decision.WAIT
            if decided:
                yield task.task_id, decision, None
        if decided and candidates is not None:
            for child in task.downstream:
                heapq.heappush(heap, position[child])


def _decide_in_group(
    shape: DagShape, task: TaskShape, instances_of: Callable[[str], Sequence[tuple[int, State]]]
) -> Generator[InstanceDecision, None, bool]:
    """The decisions for a task of a mapped task group (see the module's rules); returns whether any."""
    lanes = [u for u in task.upstream if shape.tasks[u].mapped_group == task.mapped_group]
    others = [u for u in task.upstream if u not in lanes]
    mine = list(instances_of(task.task_id))
    unexpanded = len(mine) == 1 and mine[0][0] == -1
    if unexpanded:
        if any(index >= 0 for lane in lanes for index, _ in instances_of(lane)):
            yield task.task_id, EXPAND, None
            mine = list(instances_of(task.task_id))
            if len(mine) == 1 and mine[0][0] == -1:
                return True  # expanded into nothing: settled by the caller
        else:
            counts = UpstreamCounts.from_states(
                _plain(state) for upstream in task.upstream for _, state in instances_of(upstream)
            )
            decision = evaluate(task.trigger_rule, counts)
            if decision is Decision.WAIT:
                return False
            yield task.task_id, decision, None
            return True
    shared = [_plain(state) for upstream in others for _, state in instances_of(upstream)]
    lane_states = [dict(instances_of(lane)) for lane in lanes]
    decided = False
    for map_index, state in mine:
        if not is_pending(state):
            continue
        counts = UpstreamCounts.from_states([*shared, *(_plain(states.get(map_index)) for states in lane_states)])
        decision = evaluate(task.trigger_rule, counts)
        if decision is not Decision.WAIT:
            decided = True
            yield task.task_id, decision, map_index
    return decided


def _plain(state: State) -> str | None:
    return None if is_pending(state) else str(state)


def run_state(shape: DagShape, states_of: Callable[[str], Sequence[State]]) -> str | None:
    """``success`` or ``failed`` once every instance of the run is finished (failed when a leaf instance failed
    or is upstream_failed); None while any is not."""
    for task_id in shape.order:
        if not all(is_finished(state) for state in states_of(task_id)):
            return None
    failed = any(str(state) in FAILED_STATES for task_id in shape.leaves for state in states_of(task_id))
    return "failed" if failed else "success"


def run_order_key(priority: int, created: int) -> tuple[int, int]:
    """Sort key of a ready instance: higher priority first, then creation order (the scheduler's ``ti.id``)."""
    return (-priority, created)


#: Rules whose task cannot be decided before every upstream instance finished, once an upstream succeeded:
#: a success among unfinished siblings changes nothing for them (unlike one_success, all_failed, all_skipped).
WAITS_FOR_ALL_AFTER_A_SUCCESS = frozenset(
    {
        TriggerRule.ALL_SUCCESS,
        TriggerRule.ALL_DONE,
        TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        TriggerRule.NONE_FAILED,
        TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        TriggerRule.NONE_SKIPPED,
    }
)


def successes_change_nothing(
    shape: DagShape, succeeded: Iterable[str], any_unfinished: Callable[[frozenset[str] | None], bool]
) -> bool | None:
    """Whether the success of the tasks ``succeeded`` can leave every decision of the run as it was. True when
    each downstream task waits for all its upstream instances and some of those are unfinished; for tasks without
    downstream, when the run still has unfinished instances. None when a task is unknown. Lets the scheduler put
    off reading a whole run.

    ``any_unfinished(task_ids)`` says whether some instance of those tasks (None: of any task of the run) is
    unfinished; it is asked once per downstream task at most, and stops at the first that says no, so the
    caller reads only the instances of the tasks that matter, not the whole run."""
    if shape.constraints is not None:
        return False  # a setup's success reaches teardowns and tasks that are not its direct downstream
    downstream = set()
    for task_id in set(succeeded):
        task = shape.tasks.get(task_id)
        if task is None:
            return None
        for down_id in task.downstream:
            down = shape.tasks.get(down_id)
            if down is None or down.trigger_rule not in WAITS_FOR_ALL_AFTER_A_SUCCESS:
                return False
            if down.mapped_group is not None and down.mapped_group == task.mapped_group:
                return False  # its instance in the same lane may be ready now
            downstream.add(down_id)
    if not downstream:
        return any_unfinished(None)
    return all(any_unfinished(frozenset(shape.tasks[down_id].upstream)) for down_id in sorted(downstream))
