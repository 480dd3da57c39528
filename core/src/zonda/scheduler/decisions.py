"""Deciding the task instances of one DAG run from its serialized DAG and the rows' states.

One pass walks the tasks in dependency order and settles everything it can in memory (so a skip or an
upstream failure propagates through a whole chain at once), then writes the changes in one transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select

from zonda import decision_engine as engine
from zonda.metastore import tables as t
from zonda.operations.transitions import Decided, as_ti_state, expand_group_placeholder_ti, write_decisions
from zonda.runner.retry_delay import seconds_before_retry
from zonda.runner.trigger_rules import Decision
from zonda.scheduler.serialized import SerializedDag, SerializedTask
from zonda.state import FINISHED_STATES, PAST_DEPENDENCY_MET_STATES, sql_values
from zonda.state import TaskInstanceState as S


@dataclass
class RunDecision:
    """What one pass over a run did."""

    scheduled: int = 0
    settled: int = 0
    created: int = 0
    finished_state: str | None = None
    next_ready_at: datetime | None = None
    changes: list[Decided] = field(default_factory=list)


def task_instance_row(task: SerializedTask, run: Any, map_index: int, state: str | None) -> dict[str, Any]:
    return {
        "dag_run_id": run.id,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "task_id": task.task_id,
        "map_index": map_index,
        "state": state,
        "try_number": 0,
        "max_tries": task.retries,
        "operator": task.operator,
        "pool": task.pool,
        "pool_slots": task.pool_slots,
        "queue": task.queue,
        "priority_weight": task.priority_weight,
        "task_display_name": task.task_display_name,
    }


def create_task_instances(conn: Connection, sdag: SerializedDag, run: Any) -> int:
    """A run's instances: one per task, or, for a mapped task whose length the DAG file fixes, all of them
    (see :func:`~zonda.serialization.parse_time_map_count`)."""
    from zonda.serialization import parse_time_map_count

    rows = []
    for tid in sdag.order:
        task = sdag.tasks[tid]
        count = parse_time_map_count(task.expand)
        rows.extend(task_instance_row(task, run, index, None) for index in (range(count) if count else [-1]))
    if rows:
        conn.execute(insert(t.task_instance), rows)
    return len(rows)


def _expansion_length(conn: Connection, run: Any, task: SerializedTask) -> int:
    """How many instances a mapped task gets, from literal lengths and upstream XComs (JSON only)."""
    from zonda import serde

    assert task.expand is not None
    lengths = []
    for spec in task.expand["args"].values():
        if "length" in spec:
            lengths.append(spec["length"] or 0)
            continue
        source = spec["xcom"]
        values = conn.execute(
            select(t.xcom.c.value).where(
                t.xcom.c.dag_run_id == run.id, t.xcom.c.task_id == source["task_id"], t.xcom.c.key == source["key"]
            )
        ).all()
        if len(values) != 1:
            lengths.append(len(values))  # a mapped upstream: one element per instance that pushed
            continue
        value = serde.loads(values[0][0]) if values[0][0] is not None else None
        lengths.append(len(value) if isinstance(value, list | tuple | dict) else 0)
    if task.expand["kind"] == "expand_kwargs":
        return lengths[0]
    return math.prod(lengths) if lengths else 0


def decide_run(
    conn: Connection, sdag: SerializedDag, run: Any, now: datetime, *, previous_states: Any = None
) -> RunDecision:
    """Settle and schedule what can be decided now in ``run``; the caller commits."""
    result = RunDecision()
    ti = t.task_instance
    rows = conn.execute(
        select(ti.c.id, ti.c.task_id, ti.c.map_index, ti.c.state, ti.c.ready_at).where(ti.c.dag_run_id == run.id)
    ).all()
    if not rows:
        result.created = create_task_instances(conn, sdag, run)
        rows = conn.execute(
            select(ti.c.id, ti.c.task_id, ti.c.map_index, ti.c.state, ti.c.ready_at).where(ti.c.dag_run_id == run.id)
        ).all()
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(row.task_id, []).append(dict(row._mapping))
    for task_id in sdag.order:
        if task_id not in by_task:  # a task added to the DAG after the run started
            conn.execute(insert(ti).values(**task_instance_row(sdag.tasks[task_id], run, -1, None)))
            new_id = conn.execute(
                select(ti.c.id).where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id, ti.c.map_index == -1)
            ).scalar_one()
            by_task[task_id] = [{"id": new_id, "task_id": task_id, "map_index": -1, "state": None, "ready_at": None}]
    for task_id in sdag.order:
        for inst in by_task[task_id]:
            if inst["state"] in (S.UP_FOR_RETRY, S.UP_FOR_RESCHEDULE):
                if inst["ready_at"] is None or inst["ready_at"] <= now:
                    _change(result, inst, S.SCHEDULED)
                    result.scheduled += 1
                elif result.next_ready_at is None or inst["ready_at"] < result.next_ready_at:
                    result.next_ready_at = inst["ready_at"]

    def states_of(task_id: str) -> list[str | None]:
        return [inst["state"] for inst in by_task[task_id]]

    def instances_of(task_id: str) -> list[tuple[int, str | None]]:
        return [(inst["map_index"], inst["state"]) for inst in by_task[task_id]]

    for task_id, decision, map_index in engine.decide_instances(sdag.shape, instances_of):
        task = sdag.tasks[task_id]
        instances = by_task[task_id]
        pending = [
            inst for inst in instances if engine.is_pending(inst["state"]) and map_index in (None, inst["map_index"])
        ]
        if decision == engine.EXPAND:
            _expand(conn, result, run, task, instances, None, now)
            continue
        if decision is Decision.RUN:
            if task.depends_on_past and previous_states is not None:
                states = previous_states(task_id)
                if any(s not in PAST_DEPENDENCY_MET_STATES for s in states):
                    continue
            if task.is_mapped and len(instances) == 1 and instances[0]["map_index"] == -1:
                _expand(conn, result, run, task, instances, S.SCHEDULED, now)
                continue
            for inst in pending:
                _change(result, inst, S.SCHEDULED)
                result.scheduled += 1
            continue
        state = S.SKIPPED if decision is Decision.SKIP else S.UPSTREAM_FAILED
        for inst in pending:
            _change(result, inst, state)
            result.settled += 1
    write_decisions(conn, result.changes, now=now)
    result.finished_state = engine.run_state(sdag.shape, states_of)
    return result


def _expand(
    conn: Connection,
    result: RunDecision,
    run: Any,
    task: SerializedTask,
    instances: list[dict[str, Any]],
    state: S | None,
    now: datetime,
) -> None:
    """Expand a mapped task's placeholder into one instance per element: ``state`` SCHEDULED for a task that
    may run, None for a task of a mapped group that waits for its own per-instance decisions. Nothing to map
    over skips it."""
    ti = t.task_instance
    count = _expansion_length(conn, run, task)
    if count == 0:
        _change(result, instances[0], S.SKIPPED)
        result.settled += 1
        return
    if state is None:
        # Still undecided: only the map index changes; the row is written here, in this pass's transaction.
        expand_group_placeholder_ti(conn, instances[0]["id"], now=now)
        instances[0]["map_index"] = 0
    else:
        _change(result, instances[0], state, map_index=0)
    value = None if state is None else state.value
    extra = [task_instance_row(task, run, i, value) for i in range(1, count)]
    if extra:
        conn.execute(insert(ti), extra)
        new = conn.execute(
            select(ti.c.id, ti.c.map_index).where(
                ti.c.dag_run_id == run.id, ti.c.task_id == task.task_id, ti.c.map_index > 0
            )
        ).all()
        instances.extend({"id": r.id, "task_id": task.task_id, "map_index": r.map_index, "state": value} for r in new)
    if state is not None:
        result.scheduled += count


def ended_tasks_change_nothing(conn: Connection, sdag: SerializedDag, run_id: int, ended: dict[int, str]) -> bool:
    """True when the instances that just ended (``ti_id -> task_id``) cannot make anything in the run decidable,
    so a full :func:`decide_run` (which reads every instance of the run) can wait for the next full scan.

    That holds when each ended instance succeeded and, for each of its downstream tasks, the rule waits for all
    upstream instances and some of those are still unfinished; or, for a task with no downstream, when the run
    still has unfinished instances (it cannot be complete). Conservative: anything else says False. Reads the
    ended rows and, per downstream task, at most one unfinished row among its upstream tasks' instances."""
    ti = t.task_instance
    states = dict(conn.execute(select(ti.c.id, ti.c.state).where(ti.c.id.in_(list(ended)))).all())
    if len(states) != len(ended) or any(state != S.SUCCESS for state in states.values()):
        return False
    unfinished = or_(ti.c.state.is_(None), ti.c.state.not_in(sql_values(FINISHED_STATES)))

    def any_unfinished(task_ids: frozenset[str] | None) -> bool:
        query = select(ti.c.id).where(ti.c.dag_run_id == run_id, unfinished)
        if task_ids is not None:
            query = query.where(ti.c.task_id.in_(sorted(task_ids)))
        return conn.execute(query.limit(1)).first() is not None

    return bool(engine.successes_change_nothing(sdag.shape, set(ended.values()), any_unfinished))


def _change(result: RunDecision, inst: dict[str, Any], target: S, *, map_index: int | None = None) -> None:
    """Decide to move ``inst`` to ``target``; written (as a compare-and-set on the state read) at the end."""
    result.changes.append(Decided(inst["id"], as_ti_state(inst["state"]), target, map_index))
    inst["state"] = target.value
    if map_index is not None:
        inst["map_index"] = map_index


def retry_ready_at(task: SerializedTask, failed_try: int, now: datetime) -> datetime:
    seconds = seconds_before_retry(
        task.retry_delay,
        failed_try,
        exponential_backoff=task.retry_exponential_backoff,
        max_retry_delay=task.max_retry_delay,
    )
    return now + timedelta(seconds=seconds)
