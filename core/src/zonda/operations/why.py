""" "Why isn't my task running?": name what holds a task instance back, as the scheduler would see it.

Called by ``zonda tasks why`` and the web server's task-instance page. It reads the serialized DAG and the
metastore only (no DAG file is imported) and asks the same questions the scheduler asks, in its order:

1. Is anything alive to run it? (a scheduler heartbeat; a triggerer for a deferred instance)
2. May the run go on? (the DAG paused, the run queued behind ``max_active_runs``, ended, or run by ``dags test``)
3. Is the instance itself waiting? (already finished, a retry or reschedule time, a trigger)
4. May it be scheduled? (its trigger rule, evaluated by the scheduler's own
   :func:`~zonda.runner.trigger_rules.evaluate` over the upstream states; a ``depends_on_past`` predecessor)
5. May it be queued? (its pool's free slots, the DAG's ``max_active_tasks``, the task's
   ``max_active_tis_per_dag`` / ``max_active_tis_per_dagrun``, ``[core] parallelism``)

Each answer that blocks is a :class:`Blocker` with a stable ``code`` (for the API and tests) and a one-line
message that names the tasks, pools, limits and times involved. Observations that block nothing (it is running,
it will be scheduled at the next pass) are ``notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from zonda.exceptions import NotFound, TaskNotFound
from zonda.metastore import tables as t
from zonda.operations.dag_runs import find_run
from zonda.operations.task_instances_read import TaskInstanceRecord, record
from zonda.scheduler.runs import load_serialized
from zonda.state import ACTIVE_STATES, FINISHED_STATES, PAST_DEPENDENCY_MET_STATES, sql_values

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.scheduler.serialized import SerializedDag, SerializedTask

#: ``run_type`` of runs an in-process runner owns (``zonda dags test``, ``zonda.testing.run_dag``).
IN_PROCESS_RUN_TYPE = "test"

# Blocker codes: stable names the API and the tests use.
NO_SCHEDULER = "no_scheduler"
NO_TRIGGERER = "no_triggerer"
DAG_PAUSED = "dag_paused"
DAG_INACTIVE = "dag_inactive"
SCHEDULING_ERROR = "scheduling_error"
RUN_QUEUED = "run_queued"
MAX_ACTIVE_RUNS = "max_active_runs"
RUN_FINISHED = "run_finished"
IN_PROCESS_RUN = "in_process_run"
TASK_FINISHED = "task_finished"
RETRY_WAIT = "retry_wait"
RESCHEDULE_WAIT = "reschedule_wait"
DEFERRED = "deferred"
TRIGGER_RULE = "trigger_rule"
WILL_NOT_RUN = "will_not_run"
DEPENDS_ON_PAST = "depends_on_past"
POOL_MISSING = "pool_missing"
POOL_FULL = "pool_full"
MAX_ACTIVE_TASKS = "max_active_tasks"
MAX_ACTIVE_TIS_PER_DAG = "max_active_tis_per_dag"
MAX_ACTIVE_TIS_PER_DAGRUN = "max_active_tis_per_dagrun"
PARALLELISM = "parallelism"


@dataclass(frozen=True)
class Blocker:
    """One reason the instance does not run now. ``map_index`` is set when it is about one mapped instance."""

    code: str
    message: str
    map_index: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WhyReport:
    dag_id: str
    task_id: str
    run_id: str
    run_state: str
    instances: tuple[TaskInstanceRecord, ...]
    blockers: tuple[Blocker, ...]
    #: What is happening that blocks nothing ("running since ...", "scheduled at the next pass").
    notes: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    @property
    def codes(self) -> list[str]:
        return [b.code for b in self.blockers]


@dataclass
class _Limits:
    scheduler_timeout: float
    parallelism: int
    max_active_tasks: int
    max_active_runs: int

    @classmethod
    def from_settings(cls, settings: Settings) -> _Limits:
        return cls(
            scheduler_timeout=float(settings.get("scheduler", "scheduler_heartbeat_timeout")),
            parallelism=int(settings.get("core", "parallelism")),
            max_active_tasks=int(settings.get("core", "max_active_tasks_per_dag")),
            max_active_runs=int(settings.get("core", "max_active_runs_per_dag")),
        )


def why(
    engine: Any,
    settings: Settings,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int | None = None,
    *,
    now: datetime | None = None,
) -> WhyReport:
    """What holds back ``task_id`` in run ``run_id`` (every instance of a mapped task, or only ``map_index``).

    NotFound for an unknown DAG, task, run or map index (with the closest names)."""
    from zonda.timezone import utcnow

    now = now or utcnow()
    limits = _Limits.from_settings(settings)
    with engine.connect() as conn:
        sdag = load_serialized(conn, dag_id)
        task = _task(sdag, task_id)
        run = find_run(conn, dag_id, run_id)
        dag_row = conn.execute(select(t.dag).where(t.dag.c.dag_id == dag_id)).first()
        ti = t.task_instance
        rows = conn.execute(select(ti).where(ti.c.dag_run_id == run.id)).all()
        by_task: dict[str, list[Any]] = {}
        for row in rows:
            by_task.setdefault(row.task_id, []).append(row)
        mine = sorted(by_task.get(task_id, []), key=lambda r: r.map_index)
        if map_index is not None:
            mine = [r for r in mine if r.map_index == map_index]
            if not mine and by_task.get(task_id):
                indexes = ", ".join(str(r.map_index) for r in sorted(by_task[task_id], key=lambda r: r.map_index))
                raise NotFound(
                    f"run {run_id!r} has no instance {dag_id}.{task_id}[{map_index}]; its map indexes are {indexes}"
                )
        check = _Check(conn, engine, sdag, task, run, dag_row, limits, now)
        check.run_level(has_instances=bool(rows))
        if run.state in ("running", "queued") and run.run_type != IN_PROCESS_RUN_TYPE and rows:
            if not mine:
                check.note(f"{task_id} has no instance in this run yet: the scheduler adds it at its next pass")
            for row in mine:
                check.instance(row, by_task)
        elif run.state in ("success", "failed") or run.run_type == IN_PROCESS_RUN_TYPE:
            for row in mine:
                if row.state in FINISHED_STATES:
                    check.finished(row)
        if check.pending:
            check.services(mine)
        conn.rollback()
    return WhyReport(
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        run_state=run.state,
        instances=tuple(record(r) for r in mine),
        blockers=tuple(check.blockers),
        notes=tuple(check.notes),
    )


def _task(sdag: SerializedDag, task_id: str) -> SerializedTask:
    task = sdag.tasks.get(task_id)
    if task is None:
        from zonda.suggestions import unknown_name

        raise TaskNotFound(
            unknown_name(
                f"DAG {sdag.dag_id!r} has no task {task_id!r}",
                task_id,
                sdag.tasks,
                f"`zonda tasks list {sdag.dag_id}` lists them",
            )
        )
    return task


def _label(row: Any) -> str:
    return f"{row.task_id}[{row.map_index}]" if row.map_index >= 0 else row.task_id


def _when(value: datetime, now: datetime) -> str:
    seconds = (value - now).total_seconds()
    return f"{value.isoformat(timespec='seconds')} (in {seconds:.0f} s)"


class _Check:
    """The questions of the module docstring, asked over one connection; collects blockers and notes."""

    def __init__(
        self,
        conn: Any,
        engine: Any,
        sdag: SerializedDag,
        task: SerializedTask,
        run: Any,
        dag_row: Any,
        limits: _Limits,
        now: datetime,
    ) -> None:
        self.conn, self.engine, self.sdag, self.task, self.run = conn, engine, sdag, task, run
        self.dag_row, self.limits, self.now = dag_row, limits, now
        self.blockers: list[Blocker] = []
        self.notes: list[str] = []
        #: Whether some instance still waits for the scheduler (so its absence or a pause matters).
        self.pending = False
        self._deferred = False
        self._usage: tuple[dict[str, int], dict[str, int], int] | None = None

    def block(self, code: str, message: str, row: Any = None, **details: Any) -> None:
        index = row.map_index if row is not None and row.map_index >= 0 else None
        self.blockers.append(Blocker(code, message, index, details))

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- 2. the run ---------------------------------------------------------------------------------------------

    def run_level(self, *, has_instances: bool) -> None:
        run, dag_id = self.run, self.sdag.dag_id
        if run.run_type == IN_PROCESS_RUN_TYPE:
            self.block(
                IN_PROCESS_RUN,
                f"run {run.run_id!r} was made by `zonda dags test` (or run_dag) and is {run.state}: its own process "
                "runs it, never the scheduler; clear the task to hand the run to the scheduler",
                run_state=run.state,
            )
            return
        if run.state in ("success", "failed"):
            ended = f" at {run.end_date.isoformat(timespec='seconds')}" if run.end_date else ""
            self.block(
                RUN_FINISHED,
                f"run {run.run_id!r} ended {run.state}{ended}; clear the task "
                f"(zonda tasks clear {dag_id} --task-regex '^{self.task.task_id}$' --run-id {run.run_id}) "
                "to run it again",
                run_state=run.state,
            )
            return
        if run.state == "queued":
            self.pending = True
            limit = self.sdag.max_active_runs or self.limits.max_active_runs
            running = self.conn.execute(
                select(t.dag_run.c.run_id)
                .where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.state == "running")
                .order_by(t.dag_run.c.logical_date)
            ).all()
            if len(running) >= limit:
                names = ", ".join(r[0] for r in running[:3]) + (", ..." if len(running) > 3 else "")
                self.block(
                    MAX_ACTIVE_RUNS,
                    f"run {run.run_id!r} is queued: DAG {dag_id!r} already has {len(running)} running run(s) "
                    f"({names}) and max_active_runs is {limit}; it starts when one ends",
                    running=len(running),
                    limit=limit,
                )
            else:
                self.block(
                    RUN_QUEUED,
                    f"run {run.run_id!r} is queued, not running yet: the scheduler starts it at its next pass"
                    + ("" if has_instances else " and then creates its task instances"),
                )

    # -- 3. and 4. the instance ---------------------------------------------------------------------------------

    def finished(self, row: Any) -> None:
        ended = f" at {row.end_date.isoformat(timespec='seconds')}" if row.end_date else ""
        self.block(
            TASK_FINISHED,
            f"{_label(row)} already finished: {row.state}{ended} (try {row.try_number}); clear it to run it again",
            row,
            state=row.state,
        )

    def instance(self, row: Any, by_task: dict[str, list[Any]]) -> None:
        state = row.state
        if state in FINISHED_STATES:
            self.finished(row)
            return
        if state == "running":
            where = f" on {row.hostname}" if row.hostname else ""
            pid = f" (pid {row.pid})" if row.pid else ""
            since = f" since {row.start_date.isoformat(timespec='seconds')}" if row.start_date else ""
            self.note(f"{_label(row)} is running{since}{where}{pid}, try {row.try_number}")
            return
        self.pending = True
        if state == "queued":
            since = f" since {row.queued_dttm.isoformat(timespec='seconds')}" if row.queued_dttm else ""
            self.note(f"{_label(row)} is queued{since}: handed to the executor, waiting for a worker to start it")
            return
        if state == "deferred":
            self._deferred = True
            timeout = ""
            if row.trigger_timeout:
                timeout = f", until {row.trigger_timeout.isoformat(timespec='seconds')} at most"
            self.block(DEFERRED, f"{_label(row)} is deferred: it waits for its trigger to fire{timeout}", row)
            return
        if state in ("up_for_retry", "up_for_reschedule"):
            if row.ready_at is not None and row.ready_at > self.now:
                if state == "up_for_retry":
                    self.block(
                        RETRY_WAIT,
                        f"{_label(row)} failed try {row.try_number} and waits for its retry delay: the next try "
                        f"may start at {_when(row.ready_at, self.now)}",
                        row,
                        ready_at=row.ready_at.isoformat(),
                    )
                else:
                    self.block(
                        RESCHEDULE_WAIT,
                        f"{_label(row)} is a sensor waiting to poke again at {_when(row.ready_at, self.now)}",
                        row,
                        ready_at=row.ready_at.isoformat(),
                    )
                return
            self.note(f"{_label(row)} is {state} and its time has come: the scheduler schedules it at its next pass")
            self.queueing(row)
            return
        if state is None and not self.trigger_rule(row, by_task):
            return
        self.queueing(row)

    def trigger_rule(self, row: Any, by_task: dict[str, list[Any]]) -> bool:
        """Whether the trigger rule (and depends_on_past) let the scheduler schedule it; blockers otherwise."""
        from zonda.runner.trigger_rules import Decision, UpstreamCounts, evaluate

        task = self.task
        upstream = [inst for up in sorted(task.upstream) for inst in by_task.get(up, [])]
        counts = UpstreamCounts.from_states(inst.state for inst in upstream)
        constraints = self.sdag.shape.constraints
        if constraints is None:
            decision = evaluate(task.trigger_rule, counts)
        else:
            # Setups and teardowns: the same corrections the decision engine makes (zonda.setup_teardown_graph).
            setups = [
                inst.state for up in task.upstream if self.sdag.tasks[up].is_setup for inst in by_task.get(up, [])
            ]
            decision = constraints.apply(
                task.task_id,
                evaluate(task.trigger_rule, counts.with_setups(setups)),
                lambda task_id: [inst.state for inst in by_task.get(task_id, [])],
            )
            related = constraints.indirect_setups.get(task.task_id, frozenset()) | constraints.scope.get(
                task.task_id, frozenset()
            )
            upstream += [inst for other in sorted(related) for inst in by_task.get(other, [])]
        if decision is Decision.WAIT:
            waiting = [inst for inst in upstream if inst.state not in FINISHED_STATES] or upstream
            named = ", ".join(f"{_label(inst)} ({inst.state or 'none'})" for inst in waiting[:10])
            more = f" and {len(waiting) - 10} more" if len(waiting) > 10 else ""
            self.block(
                TRIGGER_RULE,
                f"{_label(row)} waits for its trigger rule {task.trigger_rule}: upstream {named}{more}",
                row,
                trigger_rule=str(task.trigger_rule),
                upstream={_label(inst): inst.state or "none" for inst in waiting},
            )
            return False
        if decision is not Decision.RUN:
            self.block(
                WILL_NOT_RUN,
                f"{_label(row)} will not run: with trigger rule {task.trigger_rule} its upstream states make it "
                f"{decision.value}, which the scheduler records at its next pass",
                row,
                decided=decision.value,
            )
            return False
        if task.depends_on_past:
            previous = self._previous_run()
            if previous is not None:
                states = [
                    r[0]
                    for r in self.conn.execute(
                        select(t.task_instance.c.state).where(
                            t.task_instance.c.dag_run_id == previous.id, t.task_instance.c.task_id == task.task_id
                        )
                    )
                ]
                bad = [s for s in states if s not in PAST_DEPENDENCY_MET_STATES]
                if bad:
                    self.block(
                        DEPENDS_ON_PAST,
                        f"{_label(row)} has depends_on_past=True and its instance in the previous run "
                        f"{previous.run_id!r} is {bad[0] or 'none'}, not success or skipped",
                        row,
                        previous_run=previous.run_id,
                        previous_state=bad[0] or "none",
                    )
                    return False
        self.note(f"{_label(row)}'s upstream let it run: the scheduler schedules it at its next pass")
        return True

    def _previous_run(self) -> Any:
        if self.run.logical_date is None:
            return None
        dr = t.dag_run
        return self.conn.execute(
            select(dr.c.id, dr.c.run_id)
            .where(dr.c.dag_id == self.sdag.dag_id, dr.c.logical_date < self.run.logical_date)
            .order_by(dr.c.logical_date.desc())
            .limit(1)
        ).first()

    # -- 5. queueing --------------------------------------------------------------------------------------------

    def _slot_usage(self) -> tuple[dict[str, int], dict[str, int], int]:
        if self._usage is None:
            ti = t.task_instance
            pool_used: dict[str, int] = {}
            dag_used: dict[str, int] = {}
            total = 0
            for dag_id, pool_name, count, slots in self.conn.execute(
                select(ti.c.dag_id, ti.c.pool, func.count(), func.coalesce(func.sum(ti.c.pool_slots), 0))
                .where(ti.c.state.in_(sql_values(ACTIVE_STATES)))
                .group_by(ti.c.dag_id, ti.c.pool)
            ):
                total += count
                pool_used[pool_name] = pool_used.get(pool_name, 0) + int(slots)
                dag_used[dag_id] = dag_used.get(dag_id, 0) + count
            self._usage = (pool_used, dag_used, total)
        return self._usage

    def queueing(self, row: Any) -> None:
        """The scheduler's queueing limits, as :meth:`Scheduler._queue` applies them to a scheduled instance."""
        pool_used, dag_used, total = self._slot_usage()
        pool = self.conn.execute(select(t.pool.c.slots).where(t.pool.c.pool == row.pool)).first()
        if pool is None:
            self.block(
                POOL_MISSING,
                f"{_label(row)} uses pool {row.pool!r}, which does not exist, so it is never queued; create it with "
                f"`zonda pools set {row.pool} SLOTS`",
                row,
                pool=row.pool,
            )
        else:
            used = pool_used.get(row.pool, 0)
            if used + row.pool_slots > pool.slots:
                self.block(
                    POOL_FULL,
                    f"pool {row.pool!r} is full: {used} of {pool.slots} slots in use by queued and running tasks, "
                    f"and {_label(row)} needs {row.pool_slots}",
                    row,
                    pool=row.pool,
                    used=used,
                    slots=pool.slots,
                    needs=row.pool_slots,
                )
        limit = self.sdag.max_active_tasks or self.limits.max_active_tasks
        active = dag_used.get(self.sdag.dag_id, 0)
        if active >= limit:
            self.block(
                MAX_ACTIVE_TASKS,
                f"DAG {self.sdag.dag_id!r} has {active} task instance(s) queued or running and its max_active_tasks "
                f"is {limit}",
                row,
                active=active,
                limit=limit,
            )
        self._task_limits(row)
        if total >= self.limits.parallelism:
            self.block(
                PARALLELISM,
                f"{total} task instance(s) are queued or running in the whole installation and [core] parallelism "
                f"is {self.limits.parallelism}",
                row,
                active=total,
                limit=self.limits.parallelism,
            )

    def _task_limits(self, row: Any) -> None:
        """The task's own ``max_active_tis_per_dag`` / ``max_active_tis_per_dagrun``, as the scheduler counts."""
        from zonda.scheduler.task_limits import PER_DAG, TaskSlots, has_limit

        if not has_limit(self.task):
            return
        slots = TaskSlots.count(self.conn, [(self.sdag.dag_id, self.task.task_id)])
        blocker = slots.blocker(self.task, self.sdag.dag_id, row.dag_run_id)
        if blocker is None:
            return
        where = "over all runs of the DAG" if blocker.limit_name == PER_DAG else "in this run"
        self.block(
            MAX_ACTIVE_TIS_PER_DAG if blocker.limit_name == PER_DAG else MAX_ACTIVE_TIS_PER_DAGRUN,
            f"task {self.task.task_id!r} has {blocker.active} instance(s) queued or running {where} and its "
            f"{blocker.limit_name} is {blocker.limit}",
            row,
            active=blocker.active,
            limit=blocker.limit,
        )

    # -- 1. and the DAG: what every pending instance needs ------------------------------------------------------

    def services(self, mine: Sequence[Any]) -> None:
        from zonda.scheduler import jobs

        dag_id = self.sdag.dag_id
        if self.dag_row is not None and self.dag_row.is_paused:
            self.block(
                DAG_PAUSED,
                f"DAG {dag_id!r} is paused: the scheduler starts none of its runs and queues none of its tasks; "
                f"`zonda dags unpause {dag_id}`",
            )
        if self.dag_row is not None and not self.dag_row.is_active:
            self.block(
                DAG_INACTIVE,
                f"DAG {dag_id!r} is no longer in the DAGs folder (last seen in {self.dag_row.fileloc}): its tasks "
                "cannot be loaded to run",
            )
        if self.dag_row is not None and self.dag_row.scheduling_error:
            self.block(
                SCHEDULING_ERROR,
                f"the scheduler cannot schedule DAG {dag_id!r}: {' '.join(self.dag_row.scheduling_error.split())}",
            )
        timeout = self.limits.scheduler_timeout
        if not jobs.alive_jobs(self.engine, "scheduler", timeout):
            last = self._last_heartbeat("scheduler")
            seen = f"the last one heartbeated at {last.isoformat(timespec='seconds')}" if last else "none ever ran here"
            self.block(
                NO_SCHEDULER,
                f"no scheduler is running (no heartbeat in the last {timeout:g} s; {seen}): start `zonda scheduler` "
                "or `zonda standalone`",
            )
        if self._deferred and not jobs.alive_jobs(self.engine, "triggerer", timeout):
            self.block(
                NO_TRIGGERER,
                "no triggerer is running to fire the trigger: start `zonda triggerer` or `zonda standalone`",
            )

    def _last_heartbeat(self, job_type: str) -> datetime | None:
        job = t.job
        return self.conn.execute(select(func.max(job.c.latest_heartbeat)).where(job.c.job_type == job_type)).scalar()
