"""The scheduler loop.

Each pass: create DAG runs that are due, start queued runs within ``max_active_runs``, decide task instances
of runs that changed (trigger rules, retries whose delay passed, mapped expansion), queue scheduled instances
within ``core.parallelism``, the DAG's ``max_active_tasks``, pools and each task's ``max_active_tis_per_dag`` /
``max_active_tis_per_dagrun`` (by priority), and hand them to the executor. Then it waits — but only until the
executor reports an ended task, so a task's downstream is queued at once rather than at the next poll.

An error while creating or deciding one DAG's runs (a stored schedule that cannot fire, a timetable that raises,
a serialized DAG that does not load) stays with that DAG: logged with its id, recorded on its ``dag`` row
(:mod:`zonda.scheduler.problems`), and the pass goes on with the other DAGs.

Several schedulers may share a PostgreSQL or MariaDB metastore: queueing locks the pool rows
(``SELECT ... FOR UPDATE``) and skips task-instance rows another scheduler holds (``SKIP LOCKED``), and a worker
only runs an instance it can move from ``queued`` to ``running``. On SQLite a second scheduler refuses to start.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, or_, select, update

from zonda.dag_processing.callbacks import (
    CALLBACK_OF,
    DAG_FAILURE,
    DAG_SUCCESS,
    TASK_FAILURE,
    TASK_RETRY,
    request_callback,
)
from zonda.exceptions import ZondaConfigError, ZondaException
from zonda.metastore import tables as t
from zonda.metastore.retry import OutageGuard, is_transient, retry_transient
from zonda.operations import transitions
from zonda.scheduler import jobs
from zonda.scheduler.adoption import adopt_orphans
from zonda.scheduler.decisions import decide_run, retry_ready_at
from zonda.scheduler.problems import DagProblems
from zonda.scheduler.serialized import SerializedDag
from zonda.scheduler.stuck_queued import StuckQueued
from zonda.scheduler.task_limits import TaskSlots, has_limit
from zonda.scheduler.workloads import WORKLOAD_COLUMNS, workload_of
from zonda.state import ACTIVE_STATES, DagRunState, TaskInstanceState, sql_values
from zonda.timezone import utcnow

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.executors.base import BaseExecutor, TaskEvent, Workload
    from zonda.metastore.db import Metastore

log = logging.getLogger("zonda.scheduler")

#: Runs executed by an in-process runner (``zonda dags test``, ``zonda.testing.run_dag``): never touched here.
IN_PROCESS_RUN_TYPE = "test"


#: The columns a scheduler-ended try is recorded from.
_ATTEMPT_COLUMNS = (
    t.task_instance.c.id,
    t.task_instance.c.dag_run_id,
    t.task_instance.c.state,
    t.task_instance.c.try_number,
    t.task_instance.c.dag_id,
    t.task_instance.c.task_id,
    t.task_instance.c.map_index,
    t.task_instance.c.max_tries,
    t.task_instance.c.pid,
    t.task_instance.c.queued_by_job_id,
)


@dataclass
class PassReport:
    runs_created: int = 0
    queued: int = 0
    events: int = 0
    runs_finished: int = 0


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        *,
        executor: BaseExecutor | None = None,
        metastore: Metastore | None = None,
        plugins: Any = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.plugins = plugins
        self._executor = executor
        self._metastore = metastore
        self.stop = stop or threading.Event()
        self.job_id: int | None = None
        self._dags: dict[str, tuple[str, SerializedDag]] = {}
        self._dag_checked: dict[str, float] = {}
        self._last_run_creation = 0.0
        self._deferred = 0
        self._last_orphan_check = time.monotonic()
        self.scheduler_heartbeat_timeout = float(settings.get("scheduler", "scheduler_heartbeat_timeout"))
        self._dirty_runs: set[int] = set()
        #: Runs made dirty only by instances that ended on their own (run id -> {ti id: task id}): deciding
        #: them may be skipped when those ends cannot change anything (see ended_tasks_change_nothing).
        self._ended: dict[int, dict[int, str]] = {}
        self._last_full_scan = 0.0
        self._last_heartbeat = 0.0
        self._last_zombie_check = 0.0
        self._wake_at: float | None = None
        self._last_queued_check = 0.0
        self._start_runs_soon = False  # a run ended: a queued one may take its place
        self.parallelism = int(settings.get("core", "parallelism"))
        self.default_max_active_tasks = int(settings.get("core", "max_active_tasks_per_dag"))
        self.default_max_active_runs = int(settings.get("core", "max_active_runs_per_dag"))
        self.heartbeat_timeout = float(settings.get("scheduler", "task_heartbeat_timeout"))
        self.poll_interval = float(settings.get("scheduler", "poll_interval"))
        #: Deciding every running run from scratch is a safety net (ends, creations and starts are decided as
        #: they happen), so it runs at most once a second even when the idle poll is much shorter.
        self.full_scan_interval = max(self.poll_interval, 1.0)
        #: Keeps the loop going through metastore outages (backoff, one log line per outage).
        self.outage = OutageGuard(
            "scheduler", max_delay=float(settings.get("database", "outage_backoff_max")), stop=self.stop, logger=log
        )
        #: Ended workloads polled from the executor but not yet recorded (an outage interrupted the pass).
        self._unrecorded: deque[TaskEvent] = deque()
        #: How often each instance was put back after its workload ended without claiming it (bounded).
        self._requeued: dict[int, int] = {}
        #: Instances queued longer than task_queued_timeout without a claim (a message lost on a broker).
        self.stuck_queued = StuckQueued(float(settings.get("scheduler", "task_queued_timeout")))
        #: Queued runs whose deadline rows are stored (so a run that waits is not looked up again each pass).
        self._watched_runs: set[int] = set()
        self._last_deadline_check = 0.0

    # --- life cycle -----------------------------------------------------------------------------------------

    @property
    def executor(self) -> BaseExecutor:
        if self._executor is None:
            from zonda.executors import load_executor

            self._executor = load_executor(self.settings, self.plugins)
        return self._executor

    @property
    def metastore(self) -> Metastore:
        if self._metastore is None:
            from zonda.metastore.db import Metastore

            # No liveness ping per checkout (a round trip on every transaction of every pass): each step is
            # retried on a dropped connection instead.
            self._metastore = Metastore.open(self.settings, pre_ping=False)
        return self._metastore

    @property
    def engine(self) -> Any:
        return self.metastore.engine

    @property
    def locking(self) -> bool:
        return self.metastore.supports_row_locks

    def start(self) -> None:
        from zonda.executors.base import capabilities_of
        from zonda.metastore.engine import normalize_url

        executor = self.executor
        # The URL, not a connection: nothing may connect before the executor forks its workers.
        url = self._metastore.url if self._metastore is not None else self.settings.sql_alchemy_conn
        normalize_url(url)  # a URL no wait can mend (bad syntax, unknown database) fails before any fork
        if not capabilities_of(executor).supports_sqlite and url.startswith("sqlite"):
            raise ZondaConfigError(
                f"the {type(executor).__name__} cannot use a SQLite metastore: its tasks may run on other machines, "
                "which cannot reach this file; use PostgreSQL or MySQL/MariaDB ([database] sql_alchemy_conn), or "
                "the LocalExecutor ([core] executor)"
            )
        executor.start()  # fork workers before this process opens database connections
        # Started while the metastore is down (a host booting): wait for it rather than fail.
        self.outage.until_available(self._join_metastore, url=url)

    def _join_metastore(self) -> None:
        """The first steps on the metastore: register this scheduler's job, its default pool, orphans."""
        executor = self.executor
        engine = self.engine
        if not self.locking:
            others = jobs.alive_jobs(
                engine, "scheduler", float(self.settings.get("scheduler", "scheduler_heartbeat_timeout"))
            )
            if others:
                executor.terminate()
                other = others[0]
                raise ZondaException(
                    f"another scheduler (job {other.id}, pid {other.pid} on {other.hostname}) is running on this "
                    "SQLite metastore, and SQLite cannot coordinate two; stop it first, or use PostgreSQL or "
                    "MySQL/MariaDB ([database] sql_alchemy_conn) to run several schedulers"
                )
        self._warn_about_connections()
        if self.job_id is None:  # an outage cut an earlier try short after this
            self.job_id = jobs.start_job(engine, "scheduler", type(executor).__name__)
        self._ensure_default_pool()
        self.problems.load()
        self._reset_orphans()
        log.info("scheduler started (job %s, %s, %s)", self.job_id, type(executor).__name__, self.metastore)

    def _warn_about_connections(self) -> None:
        """An executor that keeps warm task processes here (the LocalExecutor) holds a connection per process:
        warn now if the server cannot take them."""
        from zonda.executors.base import capabilities_of
        from zonda.metastore.capacity import connection_budget_warning

        executor = self.executor
        if not capabilities_of(executor).keeps_warm_processes:
            return
        pool = int(self.settings.get("database", "sql_alchemy_pool_size"))
        needed = executor.parallelism + pool + 2  # task processes, this process's pool, a heartbeat or two
        message = connection_budget_warning(self.engine, needed, f"this scheduler ({type(executor).__name__})")
        if message:
            log.warning(message)

    def run(
        self,
        *,
        max_passes: int | None = None,
        install_signals: bool = False,
        started: bool = False,
        after_pass: Callable[[], None] | None = None,
    ) -> int:
        """The scheduler loop (``zonda scheduler``, ``zonda standalone`` and the tests run this one): passes until
        :attr:`stop` is set (SIGTERM / SIGINT with ``install_signals``) or ``max_passes``, then :meth:`shutdown`.

        ``started``: :meth:`start` was called already (``zonda standalone`` starts the scheduler, so the executor
        forks its workers, before its other services' threads exist). ``after_pass`` runs after each pass.
        A pass that fails on a transient database error is abandoned and the next one picks the work up; any
        other error stops the loop. Returns the number of passes."""
        from zonda.services import stop_on_signals

        passes = 0
        with stop_on_signals(self.stop) if install_signals else contextlib.nullcontext():
            if not started:
                self.start()
            try:
                while not self.stop.is_set():
                    self.run_pass()
                    passes += 1
                    if after_pass is not None:
                        after_pass()
                    if max_passes is not None and passes >= max_passes:
                        break
            finally:
                self.shutdown()
        return passes

    def run_pass(self) -> PassReport | None:
        """One pass of the loop, riding out a metastore outage: a transient error (a lock conflict retried in
        vain, a dropped connection, a server that is down) abandons the pass and waits (backoff with jitter,
        cut short by ``stop``); the work is all in the database, so a later pass picks it up. None then. Any
        other error propagates. ``zonda scheduler`` and ``standalone`` run this; so do the tests."""
        try:
            report = self.run_once()
        except Exception as exc:
            self.outage.failed(exc)
            return None
        self.outage.succeeded()
        return report

    def shutdown(self) -> None:
        grace = float(self.settings.get("scheduler", "shutdown_grace_period"))
        log.info("scheduler stopping: waiting up to %.0fs for running tasks, then terminating them", grace)
        try:
            self.executor.end(timeout=grace)
            self._unrecorded.extend(self.executor.poll(0))
            self._during_shutdown(self._process_events, "recording ended tasks")
        finally:
            if self._metastore is not None:  # None: stopped before the metastore ever answered
                self._during_shutdown(self.problems.flush, "recording DAG problems")
                if self.job_id is not None:
                    self._during_shutdown(lambda: jobs.end_job(self.engine, self.job_id), "ending the scheduler job")
                self._metastore.engine.dispose()

    def _during_shutdown(self, step: Any, what: str) -> None:
        """A shutdown step that needs the metastore: during an outage it is skipped (logged), so the scheduler
        still stops; what it would have written is found again by the next scheduler (orphans, heartbeats)."""
        try:
            step()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("scheduler stopping: %s skipped, the metastore is unavailable", what)

    def run_once(self) -> PassReport:
        report = PassReport()
        now_mono = time.monotonic()
        if now_mono - self._last_heartbeat >= 1.0:
            retry_transient(lambda: jobs.heartbeat(self.engine, self.job_id), what="scheduler heartbeat")  # type: ignore[arg-type]
            self._last_heartbeat = now_mono
        if now_mono - self._last_run_creation >= 1.0 or (self._wake_at is not None and now_mono >= self._wake_at):
            report.runs_created = retry_transient(self._create_due_runs, what="creating due runs")
            self._last_run_creation = now_mono
        if report.runs_created or self._start_runs_soon or now_mono - self._last_queued_check >= self.poll_interval:
            # Runs queued by others (`dags trigger`) are seen within poll_interval; this scheduler's own at once.
            self._start_runs_soon = False
            self._last_queued_check = now_mono
            retry_transient(self._start_queued_runs, what="starting queued runs")
        full = now_mono - self._last_full_scan >= self.full_scan_interval
        report.runs_finished = self._decide(full)
        if full:
            self._last_full_scan = now_mono
        report.queued = retry_transient(self._queue, what="queueing task instances")
        if now_mono - self._last_zombie_check >= min(5.0, self.heartbeat_timeout / 2):
            # Processes could not heartbeat (nor record ends) while the metastore was down: they get a whole
            # task_heartbeat_timeout after it is back before they are taken for dead.
            if self.outage.quiet_for() >= self.heartbeat_timeout:
                retry_transient(self._find_zombies, what="looking for dead task processes")
                retry_transient(self._find_lost_workloads, what="looking for lost workloads")
                retry_transient(self._find_stuck_queued, what="looking for instances queued too long")
            retry_transient(self._expire_deferrals, what="expiring deferrals")
            self._last_zombie_check = now_mono
        if now_mono - self._last_orphan_check >= min(10.0, self.scheduler_heartbeat_timeout / 2):
            if self.outage.quiet_for() >= self.scheduler_heartbeat_timeout:  # the same for other schedulers
                retry_transient(self._reset_orphans, what="resetting orphaned instances")
            self._last_orphan_check = now_mono
        if now_mono - self._last_deadline_check >= 1.0:
            retry_transient(self._judge_deadlines, what="checking deadlines")
            self._last_deadline_check = now_mono
        self.problems.flush()  # between transactions: the DAG rows are not locked now
        if self._unrecorded:  # left over from a pass an outage cut short
            self._process_events()
        # Another pass at once only if something new may be decidable; queued work reports back as events.
        timeout = 0.0 if (report.runs_created or self._dirty_runs or self._ended) else self._idle_timeout()
        events = self.executor.poll(timeout)
        report.events = len(events)
        self._process_events(events)
        return report

    def _idle_timeout(self) -> float:
        timeout = self.poll_interval
        if self._deferred:
            # A triggerer wakes deferred instances by writing `scheduled`: look often while any wait.
            timeout = min(timeout, 0.1)
        if self._wake_at is not None:
            timeout = min(timeout, max(self._wake_at - time.monotonic(), 0.0))
        return timeout

    # --- DAG runs -----------------------------------------------------------------------------------------

    def serialized(self, conn: Any, dag_id: str) -> SerializedDag | None:
        """The serialized DAG, re-checked against the metastore's hash at most once a second; None when it is
        gone or does not load (then recorded as the DAG's problem)."""
        cached = self._dags.get(dag_id)
        now = time.monotonic()
        if cached is not None and now - self._dag_checked.get(dag_id, 0.0) < 1.0:
            return cached[1]
        sd = t.serialized_dag
        digest = conn.execute(select(sd.c.dag_hash).where(sd.c.dag_id == dag_id)).scalar()
        self._dag_checked[dag_id] = now
        if digest is None:
            self._dags.pop(dag_id, None)
            return None
        if cached is not None and cached[0] == digest:
            return cached[1]
        data = conn.execute(select(sd.c.data).where(sd.c.dag_id == dag_id)).scalar_one()
        try:
            sdag: SerializedDag | None = SerializedDag.from_json(data)
        except Exception as exc:  # a stored DAG that does not load is that DAG's problem only
            self.problems.report(dag_id, "load", "load the stored (serialized) DAG", exc)
            sdag = None  # cached under this digest: not loaded again until the processor stores a new version
        else:
            self.problems.clear(dag_id, "load")
        self._dags[dag_id] = (digest, sdag)  # type: ignore[assignment]
        return sdag

    def _create_due_runs(self) -> int:
        created = 0
        now = utcnow()
        with self.engine.begin() as conn:
            query = select(t.dag).where(t.dag.c.is_active.is_(True), t.dag.c.is_paused.is_(False))
            if self.locking:
                query = query.with_for_update(skip_locked=True)
            for dag_row in conn.execute(query).all():
                sdag = self.serialized(conn, dag_row.dag_id)
                if sdag is None:
                    continue
                try:
                    created += self._create_runs_for(conn, dag_row, sdag, now)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    # A Python error from the timetable (its intervals are checked before any row is written):
                    # the transaction is intact, runs computed before the error stay, and the other DAGs' runs
                    # are still created in this pass.
                    self.problems.report(dag_row.dag_id, "create runs", "compute the next run", exc)
                else:
                    self.problems.clear(dag_row.dag_id, "create runs")
        return created

    def _create_runs_for(self, conn: Any, dag_row: Any, sdag: SerializedDag, now: datetime) -> int:
        schedule_type = (sdag.data.get("schedule") or {}).get("type", "NullTimetable")
        is_once = schedule_type == "OnceTimetable"
        if not is_once and not sdag.timetable.periodic:
            return 0  # schedule=None: manual runs only
        existing_latest = conn.execute(
            select(func.max(t.dag_run.c.data_interval_end)).where(
                t.dag_run.c.dag_id == sdag.dag_id, t.dag_run.c.run_type.in_(("scheduled", "backfill"))
            )
        ).scalar()
        start = sdag.start_date
        if start is None:
            # No start_date (allowed, as in Airflow 3): the DAG starts when this scheduler first sees it. That
            # moment is kept as the DAG's next_dagrun, so a restart does not move it.
            start = dag_row.next_dagrun or self._first_start(sdag, now)
        if is_once:
            if (
                existing_latest is not None
                or conn.execute(
                    select(func.count())
                    .select_from(t.dag_run)
                    .where(t.dag_run.c.dag_id == sdag.dag_id, t.dag_run.c.run_type == "scheduled")
                ).scalar()
            ):
                return 0
            if start > now:
                return 0
            self._insert_run(conn, sdag, start, start, start, "scheduled")
            return 1
        timetable = sdag.timetable
        if timetable.active_runs_limit is not None and self._active_scheduled_runs(conn, sdag.dag_id):
            return 0  # @continuous: the next run is created once the current one has ended
        created = 0
        last_end = existing_latest
        for _ in range(1000):  # bounded: a catch-up creates at most this many runs per pass
            interval = _checked(timetable.next_run(last_end, start, now=now))
            if interval is None or interval.end > now:
                break
            if sdag.end_date is not None and interval.start > sdag.end_date:
                break
            if not sdag.catchup:
                # catchup=False: only the latest complete interval runs, older ones are skipped.
                latest = _checked(timetable.latest_complete_interval(now))
                if latest is not None and latest.start >= interval.start:
                    interval = latest
            if self._insert_run(conn, sdag, interval.start, interval.start, interval.end, "scheduled"):
                created += 1
            last_end = interval.end
            if not sdag.catchup or timetable.active_runs_limit is not None:
                break
        nxt = _checked(timetable.next_run(last_end, start, now=now))
        if nxt is not None:
            conn.execute(
                update(t.dag)
                .where(t.dag.c.dag_id == sdag.dag_id)
                .values(
                    next_dagrun=nxt.start,
                    next_dagrun_data_interval_start=nxt.start,
                    next_dagrun_data_interval_end=nxt.end,
                )
            )
            wake = (nxt.end - utcnow()).total_seconds()
            if wake > 0:
                mono = time.monotonic() + wake
                self._wake_at = mono if self._wake_at is None else min(self._wake_at, mono)
        return created

    @staticmethod
    def _first_start(sdag: SerializedDag, now: datetime) -> datetime:
        """Where a DAG without ``start_date`` starts: ``@once`` runs now; a periodic schedule's first run is the
        interval that ends at its next schedule point after ``now``."""
        if not sdag.timetable.periodic:
            return now
        return sdag.timetable.first_start(now)

    @staticmethod
    def _active_scheduled_runs(conn: Any, dag_id: str) -> int:
        """Scheduled runs of ``dag_id`` still queued or running."""
        return int(
            conn.execute(
                select(func.count())
                .select_from(t.dag_run)
                .where(
                    t.dag_run.c.dag_id == dag_id,
                    t.dag_run.c.run_type == "scheduled",
                    t.dag_run.c.state.in_((DagRunState.QUEUED.value, DagRunState.RUNNING.value)),
                )
            ).scalar()
            or 0
        )

    def _insert_run(
        self, conn: Any, sdag: SerializedDag, logical_date: datetime, start: datetime, end: datetime, run_type: str
    ) -> bool:
        run_id = f"{run_type}__{logical_date.isoformat()}"
        exists = conn.execute(
            select(t.dag_run.c.id).where(t.dag_run.c.dag_id == sdag.dag_id, t.dag_run.c.run_id == run_id)
        ).first()
        if exists:
            return False
        conn.execute(
            insert(t.dag_run).values(
                dag_id=sdag.dag_id,
                run_id=run_id,
                logical_date=logical_date,
                data_interval_start=start,
                data_interval_end=end,
                run_type=run_type,
                state=DagRunState.QUEUED.value,
                conf="{}",
                queued_at=utcnow(),
                external_trigger=False,
            )
        )
        return True

    def _start_queued_runs(self) -> None:
        with self.engine.begin() as conn:
            queued = conn.execute(
                select(t.dag_run.c.id, t.dag_run.c.dag_id, t.dag_run.c.logical_date, t.dag_run.c.queued_at)
                .join(t.dag, t.dag.c.dag_id == t.dag_run.c.dag_id)
                .where(
                    t.dag_run.c.state == DagRunState.QUEUED.value,
                    t.dag_run.c.run_type != IN_PROCESS_RUN_TYPE,
                    t.dag.c.is_paused.is_(False),  # a paused DAG runs nothing; its queued runs wait
                )
                .order_by(t.dag_run.c.logical_date, t.dag_run.c.id)
            ).all()
            if not queued:
                return
            running_counts = dict(
                conn.execute(
                    select(t.dag_run.c.dag_id, func.count())
                    .where(t.dag_run.c.state == DagRunState.RUNNING.value)
                    .group_by(t.dag_run.c.dag_id)
                ).all()
            )
            started = []
            to_watch = []
            for row in queued:
                sdag = self.serialized(conn, row.dag_id)
                if sdag is None:
                    continue
                if row.id not in self._watched_runs and sdag.deadlines:
                    to_watch.append((row, sdag.deadlines))
                limit = sdag.max_active_runs or self.default_max_active_runs
                if running_counts.get(row.dag_id, 0) >= limit:
                    continue
                running_counts[row.dag_id] = running_counts.get(row.dag_id, 0) + 1
                if transitions.start_run(conn, row.id, now=utcnow()):
                    started.append(row.id)
                    self._dirty_runs.add(row.id)
            if to_watch:
                self._watch_deadlines(conn, to_watch)
        for run_id in started:
            self._notify_run(run_id, "on_dag_run_running", "started")

    def _watch_deadlines(self, conn: Any, runs: list[tuple[Any, list[dict[str, Any]]]]) -> None:
        from zonda.scheduler import deadlines

        if len(self._watched_runs) > 100_000:  # only a cache: the rows themselves say which runs are watched
            self._watched_runs.clear()
        self._watched_runs |= deadlines.watch(conn, runs)

    def _judge_deadlines(self) -> None:
        from zonda.scheduler import deadlines

        with self.engine.begin() as conn:

            def fileloc_of(dag_id: str) -> str | None:
                sdag = self.serialized(conn, dag_id)
                return sdag.fileloc if sdag is not None else None

            deadlines.judge_due(conn, utcnow(), fileloc_of)

    # --- deciding task instances ----------------------------------------------------------------------------

    def _decide(self, full: bool) -> int:
        finished = 0
        now = utcnow()
        with self.engine.connect() as conn:
            if full:
                ids = [
                    r[0]
                    for r in conn.execute(
                        select(t.dag_run.c.id).where(
                            t.dag_run.c.state == DagRunState.RUNNING.value,
                            t.dag_run.c.run_type != IN_PROCESS_RUN_TYPE,
                        )
                    )
                ]
            else:
                ids = sorted(self._dirty_runs | set(self._ended))
            conn.rollback()
        ended = {} if full else self._ended
        skip_if_unchanged = {
            run_id: ended[run_id] for run_id in ids if run_id in ended and run_id not in self._dirty_runs
        }
        self._dirty_runs.clear()
        self._ended = {}
        for run_id in ids:
            if run_id in skip_if_unchanged and self._can_wait(run_id, skip_if_unchanged[run_id]):
                continue
            try:
                state = retry_transient(lambda run_id=run_id: self._decide_one(run_id, now), what="deciding a run")
            except Exception as exc:
                if is_transient(exc):
                    raise
                self._decide_failed(run_id, exc)
                continue
            if state is not None:
                finished += 1
                self._start_runs_soon = True
        return finished

    def _decide_failed(self, run_id: int, exc: Exception) -> None:
        """Deciding one run raised: that run's DAG has a problem; the other runs are decided as usual."""
        try:
            with self.engine.connect() as conn:
                dag_id = conn.execute(select(t.dag_run.c.dag_id).where(t.dag_run.c.id == run_id)).scalar()
        except Exception:  # the DAG id only names the problem; the log line still says the run
            dag_id = None
        self.problems.report(
            dag_id or f"(run {run_id})", "decide runs", f"decide the task instances of run {run_id}", exc
        )

    def _can_wait(self, run_id: int, ended: dict[int, str]) -> bool:
        """Whether deciding this run can wait for the next full scan; when the check itself fails (a stored DAG
        it cannot read), the run is decided now, which reports the problem as that DAG's."""
        try:
            return retry_transient(lambda: self._nothing_to_decide(run_id, ended), what="checking a run")
        except Exception as exc:
            if is_transient(exc):
                raise
            return False

    def _nothing_to_decide(self, run_id: int, ended: dict[int, str]) -> bool:
        from zonda.scheduler.decisions import ended_tasks_change_nothing

        with self.engine.connect() as conn:
            dag_id = conn.execute(select(t.dag_run.c.dag_id).where(t.dag_run.c.id == run_id)).scalar()
            sdag = self.serialized(conn, dag_id) if dag_id is not None else None
            result = sdag is not None and ended_tasks_change_nothing(conn, sdag, run_id, ended)
            conn.rollback()
        return result

    def _decide_one(self, run_id: int, now: datetime) -> str | None:
        with self.engine.begin() as conn:
            query = select(t.dag_run).where(
                t.dag_run.c.id == run_id,
                t.dag_run.c.state == DagRunState.RUNNING.value,
                t.dag_run.c.run_type != IN_PROCESS_RUN_TYPE,
            )
            if self.locking:
                query = query.with_for_update(skip_locked=True)
            run = conn.execute(query).first()
            if run is None:
                return None
            sdag = self.serialized(conn, run.dag_id)
            if sdag is None:
                return None

            def previous_states(task_id: str) -> list[str | None]:
                prev = conn.execute(
                    select(t.dag_run.c.id)
                    .where(t.dag_run.c.dag_id == run.dag_id, t.dag_run.c.logical_date < run.logical_date)
                    .order_by(t.dag_run.c.logical_date.desc())
                    .limit(1)
                ).scalar()
                if prev is None:
                    return []
                return [
                    r[0]
                    for r in conn.execute(
                        select(t.task_instance.c.state).where(
                            t.task_instance.c.dag_run_id == prev, t.task_instance.c.task_id == task_id
                        )
                    )
                ]

            decision = decide_run(conn, sdag, run, now, previous_states=previous_states)
            self.problems.clear(run.dag_id, "decide runs")
            if decision.next_ready_at is not None:
                mono = time.monotonic() + max((decision.next_ready_at - now).total_seconds(), 0.0)
                self._wake_at = mono if self._wake_at is None else min(self._wake_at, mono)
            timeout = sdag.dagrun_timeout
            reason = "success" if decision.finished_state == DagRunState.SUCCESS else "task_failure"
            if decision.finished_state is None and timeout and run.start_date and now - run.start_date > timeout:
                self._time_out_run(conn, run)
                decision.finished_state, reason = DagRunState.FAILED.value, "timed_out"
            if decision.finished_state is not None:
                transitions.finish_run(conn, run.id, DagRunState(decision.finished_state), end_date=now)
                kind = DAG_SUCCESS if decision.finished_state == DagRunState.SUCCESS else DAG_FAILURE
                if CALLBACK_OF[kind] in sdag.callbacks:
                    request_callback(
                        conn, kind=kind, dag_id=run.dag_id, fileloc=sdag.fileloc, dag_run_id=run.id, message=reason
                    )
        if decision.finished_state is not None:
            hook = "on_dag_run_success" if decision.finished_state == DagRunState.SUCCESS else "on_dag_run_failed"
            self._notify_run(run_id, hook, decision.finished_state)
            log.info("DAG run %s.%s ended %s", run.dag_id, run.run_id, decision.finished_state)
        return decision.finished_state

    def _time_out_run(self, conn: Any, run: Any) -> None:
        transitions.skip_timed_out_tis(conn, run.id, now=utcnow())
        log.warning("DAG run %s.%s exceeded its dagrun_timeout", run.dag_id, run.run_id)

    # --- queueing ----------------------------------------------------------------------------------------------

    def _queue(self) -> int:
        executor = self.executor
        open_slots = executor.open_slots
        if open_slots <= 0:
            return 0
        ti, dr, sd = t.task_instance, t.dag_run, t.serialized_dag
        workloads: list[Workload] = []
        with self.engine.begin() as conn:
            query = (
                select(*WORKLOAD_COLUMNS, ti.c.pool, ti.c.pool_slots)
                .join(dr, dr.c.id == ti.c.dag_run_id)
                .join(sd, sd.c.dag_id == ti.c.dag_id)
                .join(t.dag, t.dag.c.dag_id == ti.c.dag_id)
                .where(
                    ti.c.state == TaskInstanceState.SCHEDULED.value,
                    dr.c.state == DagRunState.RUNNING.value,
                    dr.c.run_type != IN_PROCESS_RUN_TYPE,
                    t.dag.c.is_paused.is_(False),
                )
                .order_by(ti.c.priority_weight.desc(), dr.c.logical_date, ti.c.id)
                .limit(max(open_slots * 4, 32))
            )
            if self.locking:
                # Rows another scheduler is queueing are skipped, never waited for.
                query = query.with_for_update(skip_locked=True, of=ti)
            candidates = conn.execute(query).all()
            if not candidates:
                return 0
            if self.locking:
                # Pool rows are the mutex of counting: two schedulers count and queue one after the other, and
                # each counts what the other committed.
                conn.execute(select(t.pool.c.pool).order_by(t.pool.c.pool).with_for_update()).all()
            # One grouped count gives the whole installation's, each pool's and each DAG's use.
            pool_used: dict[str, int] = {}
            dag_used: dict[str, int] = {}
            active_total = 0
            for dag_id, pool_name, count, slots in conn.execute(
                select(ti.c.dag_id, ti.c.pool, func.count(), func.coalesce(func.sum(ti.c.pool_slots), 0))
                .where(ti.c.state.in_(sql_values(ACTIVE_STATES)))
                .group_by(ti.c.dag_id, ti.c.pool)
            ):
                active_total += count
                pool_used[pool_name] = pool_used.get(pool_name, 0) + int(slots)
                dag_used[dag_id] = dag_used.get(dag_id, 0) + count
            budget = min(open_slots, self.parallelism - active_total)
            if budget <= 0:
                return 0
            pool_slots = dict(conn.execute(select(t.pool.c.pool, t.pool.c.slots)).all())
            task_slots = TaskSlots.count(
                conn, [(r.dag_id, r.task_id) for r in candidates if has_limit(self._task(conn, r.dag_id, r.task_id))]
            )
            chosen = []
            for row in candidates:
                if len(chosen) >= budget:
                    break
                if row.pool not in pool_slots:
                    log.warning(
                        "task %s.%s uses pool %r, which does not exist (zonda pools set); not queued",
                        row.dag_id,
                        row.task_id,
                        row.pool,
                    )
                    continue
                if pool_used.get(row.pool, 0) + row.pool_slots > pool_slots[row.pool]:
                    continue
                sdag = self.serialized(conn, row.dag_id)
                limit = (sdag.max_active_tasks if sdag else None) or self.default_max_active_tasks
                if dag_used.get(row.dag_id, 0) >= limit:
                    continue
                task = sdag.tasks.get(row.task_id) if sdag else None
                if has_limit(task):
                    if task_slots.blocker(task, row.dag_id, row.dag_run_id) is not None:  # type: ignore[arg-type]
                        continue
                    task_slots.take(row.task_id, row.dag_id, row.dag_run_id)
                pool_used[row.pool] = pool_used.get(row.pool, 0) + row.pool_slots
                dag_used[row.dag_id] = dag_used.get(row.dag_id, 0) + 1
                chosen.append(row)
            if not chosen:
                return 0
            transitions.queue_tis(conn, [r.id for r in chosen], job_id=self.job_id, now=utcnow())
            workloads = [workload_of(r, next_try=True) for r in chosen]
        for workload in workloads:
            executor.queue(workload)
        return len(workloads)

    def _task(self, conn: Any, dag_id: str, task_id: str) -> Any:
        """The serialized task, or None when its DAG or the task is not (or no longer) stored."""
        sdag = self.serialized(conn, dag_id)
        return sdag.tasks.get(task_id) if sdag else None

    # --- ended tasks, dead processes ---------------------------------------------------------------------------

    def _process_events(self, events: Iterable[TaskEvent] = ()) -> None:
        """Record ``events`` and those left in ``_unrecorded``, each removed only once recorded: an outage
        that interrupts this leaves the rest for the next pass instead of losing them."""
        self._unrecorded.extend(events)
        while self._unrecorded:
            event = self._unrecorded[0]
            w = event.workload
            if event.exit_code == 0 and w.dag_run_id >= 0:
                # The task process recorded its own end state (the usual case): decide its run again, unless
                # that end cannot change anything there.
                self._ended.setdefault(w.dag_run_id, {})[w.ti_id] = w.task_id
                self._requeued.pop(w.ti_id, None)
                self.stuck_queued.claimed(w.ti_id)
            else:
                retry_transient(lambda event=event: self._process_exit(event), what="recording a task process exit")
            self._unrecorded.popleft()

    def _process_exit(self, event: TaskEvent) -> None:
        ti = t.task_instance
        w = event.workload
        with self.engine.begin() as conn:
            row = conn.execute(select(*_ATTEMPT_COLUMNS).where(ti.c.id == w.ti_id)).first()
            if row is None:
                return
            self._dirty_runs.add(row.dag_run_id)
            if not self._held_by(row, event) or (row.try_number or 0) > w.try_number:
                return
            reason = f"the task process exited with {event.exit_code} without recording an end state"
            if row.state == TaskInstanceState.QUEUED:
                # It died before claiming the try (a connection dropped while it was idle, a crash at start):
                # nothing ran, so the instance is queued again rather than charged a try.
                self._requeue_lost(conn, row, reason)
            else:
                # The process ended but the row says it is still going: it died (kill -9, OOM, crash).
                self._fail_attempt(conn, row, reason)

    #: Times an instance is queued again after its workload ended unclaimed before the next such end fails
    #: the try instead (a workload that can never start must not loop for ever).
    MAX_REQUEUES = 3

    def _requeue_lost(self, conn: Any, row: Any, reason: str) -> None:
        """Queue again an instance this scheduler queued whose workload ended without claiming it."""
        count = self._requeued.get(row.id, 0) + 1
        if count > self.MAX_REQUEUES:
            self._requeued.pop(row.id, None)
            self._fail_attempt(conn, row, f"{reason}, {self.MAX_REQUEUES + 1} times in a row")
            return
        if transitions.requeue_lost_ti(conn, row.id, try_number=row.try_number or 0, job_id=self.job_id, now=utcnow()):
            if len(self._requeued) >= 10_000:  # bounded memory; a forgotten count only allows a few more
                self._requeued.clear()
            self._requeued[row.id] = count
            log.warning("%s.%s: %s before claiming it; queued again", row.dag_id, row.task_id, reason)

    def _find_lost_workloads(self) -> None:
        """Instances this scheduler queued whose workload the executor no longer has: it ended (reporting
        success, or its report was lost) without the instance ever being claimed. Queued again; the claim's
        compare-and-set on the try number keeps a late delivery of the old workload from running it twice."""
        running = getattr(self.executor, "running", None)
        if running is None:  # an executor that does not say what it runs: its events are all there is
            return
        ti = t.task_instance
        in_flight = set(running)
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(*_ATTEMPT_COLUMNS, ti.c.run_id).where(
                    ti.c.state == TaskInstanceState.QUEUED.value, ti.c.queued_by_job_id == self.job_id
                )
            ).all()
            for row in rows:
                if (row.dag_id, row.run_id, row.task_id, row.map_index) in in_flight:
                    continue
                self._dirty_runs.add(row.dag_run_id)
                self._requeue_lost(conn, row, "its workload ended")

    def _find_stuck_queued(self) -> None:
        """Instances this scheduler queued longer than ``task_queued_timeout`` ago that no worker claimed: their
        workload was lost on the way (see :mod:`zonda.scheduler.stuck_queued`). Queued again, no try used up;
        the executor forgets the old workload, so a new one is sent."""
        ti = t.task_instance
        now = utcnow()
        running = getattr(self.executor, "running", {})
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(*_ATTEMPT_COLUMNS, ti.c.run_id, ti.c.queued_dttm).where(
                    ti.c.state == TaskInstanceState.QUEUED.value,
                    ti.c.queued_by_job_id == self.job_id,
                    ti.c.queued_dttm < self.stuck_queued.cutoff(now),
                )
            ).all()
            for row in rows:
                if not self.stuck_queued.overdue(row.id, row.queued_dttm, now):
                    continue
                try_number = row.try_number or 0
                if not transitions.requeue_lost_ti(conn, row.id, try_number=try_number, job_id=self.job_id, now=now):
                    continue
                running.pop((row.dag_id, row.run_id, row.task_id, row.map_index), None)
                self._dirty_runs.add(row.dag_run_id)
                count = self.stuck_queued.requeued(row.id)
                log.warning(
                    "%s.%s (%s): queued %.0f s ago and not started by any worker (task_queued_timeout); "
                    "queued again (time %s)",
                    row.dag_id,
                    row.task_id,
                    row.run_id,
                    (now - row.queued_dttm).total_seconds() if row.queued_dttm else 0.0,
                    count,
                )

    def _held_by(self, row: Any, event: TaskEvent) -> bool:
        """Whether the row is still the ended process's to answer for: queued by this scheduler (the process
        died before claiming it), or running in that very process. A second workload for the same try (queued
        again after this scheduler was briefly taken for dead) loses the claim and ends; it must not fail the
        try that another process, or another scheduler's queue, holds."""
        if row.state == TaskInstanceState.QUEUED:
            return row.queued_by_job_id == self.job_id
        if row.state == TaskInstanceState.RUNNING:
            return event.pid is None or row.pid == event.pid
        return False

    def _find_zombies(self) -> None:
        ti = t.task_instance
        cutoff = utcnow() - timedelta(seconds=self.heartbeat_timeout)
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(*_ATTEMPT_COLUMNS).where(
                    ti.c.state == TaskInstanceState.RUNNING.value,
                    or_(
                        ti.c.last_heartbeat_at < cutoff,
                        and_(ti.c.last_heartbeat_at.is_(None), ti.c.start_date < cutoff),
                    ),
                )
            ).all()
            for row in rows:
                self._dirty_runs.add(row.dag_run_id)
                self._fail_attempt(
                    conn,
                    row,
                    f"no heartbeat for {self.heartbeat_timeout:g} s (task_heartbeat_timeout)",
                )

    def _fail_attempt(self, conn: Any, row: Any, reason: str) -> None:
        """End the try ``row`` says is queued or running (only if it still is: a compare-and-set)."""
        now = utcnow()
        sdag = self.serialized(conn, row.dag_id)
        task = sdag.tasks.get(row.task_id) if sdag else None
        try_number = max(row.try_number or 0, 1)
        ready_at = None
        if task is not None and try_number <= (row.max_tries or 0):
            state, ready_at = TaskInstanceState.UP_FOR_RETRY, retry_ready_at(task, try_number, now)
        else:
            state = TaskInstanceState.FAILED
        changed = transitions.fail_stale_ti(
            conn, row.id, seen=TaskInstanceState(row.state), state=state, ready_at=ready_at, now=now
        )
        log.error("%s.%s (try %s): %s -> %s", row.dag_id, row.task_id, try_number, reason, state.value)
        kind = TASK_RETRY if state is TaskInstanceState.UP_FOR_RETRY else TASK_FAILURE
        email = "email_on_retry" if kind == TASK_RETRY else "email_on_failure"
        wanted = task is not None and (CALLBACK_OF[kind] in task.callbacks or email in task.callbacks)
        if changed and task is not None and (wanted or self._failure_listeners):
            # Nobody else will run the task's callback or tell the listeners: its process is gone. The DAG
            # processor does both.
            request_callback(
                conn,
                kind=kind,
                dag_id=row.dag_id,
                fileloc=sdag.fileloc if sdag else None,
                dag_run_id=row.dag_run_id,
                task_id=row.task_id,
                map_index=row.map_index,
                try_number=try_number,
                message=reason,
            )

    @cached_property
    def problems(self) -> DagProblems:
        """Per-DAG errors: logged, recorded on the DAG's row, never fatal to the loop."""
        return DagProblems(self.engine)

    @cached_property
    def _failure_listeners(self) -> bool:
        """Whether a plugin listens to ``on_task_instance_failed`` (asked once)."""
        return self.plugins is not None and self.plugins.has_implementations("on_task_instance_failed")

    def _expire_deferrals(self) -> None:
        """Deferred instances whose trigger timeout passed fail even when no triggerer is running."""
        from zonda.triggerer import expire_deferred_timeouts

        expire_deferred_timeouts(self.engine)
        with self.engine.connect() as conn:
            self._deferred = conn.execute(
                select(func.count())
                .select_from(t.task_instance)
                .where(t.task_instance.c.state == TaskInstanceState.DEFERRED.value)
            ).scalar_one()

    def _reset_orphans(self) -> None:
        """Instances queued by a scheduler that is gone (and never started) go back to ``scheduled``; running
        ones keep running — their processes outlive the scheduler and report in the metastore, and the
        heartbeat check catches those that died. An executor whose work outlives its scheduler (Celery) adopts
        them first (:mod:`zonda.scheduler.adoption`): nothing is queued twice. Run at start and then
        periodically, so a scheduler that died while another was already running is noticed too (Airflow's
        adopt-or-reset)."""
        alive = {r.id for r in jobs.alive_jobs(self.engine, "scheduler", self.scheduler_heartbeat_timeout)}
        alive.add(self.job_id)  # type: ignore[arg-type]
        with self.engine.begin() as conn:
            # First what this scheduler's executor can take over (its work outlives a scheduler), then the rest.
            adopt_orphans(conn, self.executor, job_id=self.job_id, alive_job_ids=alive, now=utcnow())  # type: ignore[arg-type]
            changed = transitions.reset_orphaned_tis(conn, alive_job_ids=alive, now=utcnow())
            if changed:
                log.info("re-scheduled %s task instances queued by a scheduler that stopped", changed)

    def _ensure_default_pool(self) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(select(t.pool.c.pool).where(t.pool.c.pool == "default_pool")).first()
            if not exists:
                conn.execute(
                    insert(t.pool).values(
                        pool="default_pool", slots=128, description="Default pool", include_deferred=False
                    )
                )

    def _notify_run(self, run_id: int, hook: str, msg: str) -> None:
        if self.plugins is None:
            return
        from zonda.runner.store import DagRunInfo

        with self.engine.connect() as conn:
            row = conn.execute(select(t.dag_run).where(t.dag_run.c.id == run_id)).first()
        if row is None:
            return
        info = DagRunInfo.from_row(row)
        self.plugins.call(hook, dag_run=info, msg=msg)


def _checked(interval: Any) -> Any:
    """A timetable's answer, checked before it reaches a row: a plugin timetable returning something else
    is its DAG's problem (an error here), never a failed statement that would abort the whole transaction."""
    if interval is None:
        return None
    start, end = getattr(interval, "start", None), getattr(interval, "end", None)
    if not (isinstance(start, datetime) and isinstance(end, datetime)) or start.tzinfo is None or end.tzinfo is None:
        raise TypeError(f"the timetable returned {interval!r}; expected a DataInterval of timezone-aware datetimes")
    if end < start:
        raise ValueError(f"the timetable returned an interval that ends ({end}) before it starts ({start})")
    return interval
