"""The triggerer: one asyncio event loop running the triggers of deferred task instances.

Two threads. The *loop thread* runs every trigger as an asyncio task and never touches the database. The
*database thread* (the caller of :meth:`Triggerer.run`) registers a ``job`` row and heartbeats it, claims
triggers nobody runs (``triggerer_id`` NULL, or a triggerer whose heartbeat is stale), hands new ones to the
loop and cancels those that are no longer its own, and writes what fired: the task instances deferred on a
trigger go back to ``scheduled`` with the event's payload merged into ``next_kwargs`` under ``"event"``, and
the trigger row is deleted. A trigger that raises resumes its tasks with ``next_method="__trigger_error__"``
and the traceback, so the worker fails the try with it; a ``trigger_timeout`` that passes does the same with
``"__trigger_timeout__"``. Triggers whose task instances are no longer deferred (cleared, marked) are deleted
and cancelled.

Fired events are picked up as they arrive (the database thread waits on the outcome queue), so a task is
rescheduled a few milliseconds after its trigger fires; new trigger rows are looked for every
``poll_interval``. Every wait is bounded; :meth:`run` returns within about ``poll_interval`` of ``stop`` being
set (the caller sets it on SIGTERM), cancelling its triggers and handing their rows back for another triggerer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update

from zonda.metastore import tables as t
from zonda.metastore.retry import OutageGuard
from zonda.operations import transitions
from zonda.scheduler import jobs
from zonda.state import TaskInstanceState
from zonda.timezone import utcnow

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.metastore.db import Metastore
    from zonda.triggers.base import BaseTrigger

log = logging.getLogger("zonda.triggerer")

#: Rows per ``IN (...)`` list: well below every backend's bound-parameter limit.
_CHUNK = 500


@dataclass
class Outcome:
    """What one trigger did: ``kind`` is ``"event"`` (``value`` = payload) or ``"error"`` (a traceback)."""

    trigger_id: int
    kind: str
    value: Any
    at: datetime


@dataclass
class TriggererPass:
    """What one :meth:`Triggerer.run_once` did."""

    started: int = 0
    cancelled: int = 0
    fired: int = 0
    failed: int = 0
    timed_out: int = 0
    rescheduled: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


class _TriggerLoop:
    """The event loop thread: starts, runs and cancels triggers; reports outcomes on a thread-safe queue."""

    def __init__(self, outcomes: queue.SimpleQueue[Outcome]) -> None:
        self.outcomes = outcomes
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="zonda-triggerer-loop", daemon=True)
        self._tasks: dict[int, asyncio.Task[None]] = {}  # only touched in the loop thread

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()

    def submit(self, trigger_id: int, trigger: BaseTrigger) -> None:
        self.loop.call_soon_threadsafe(self._spawn, trigger_id, trigger)

    def cancel(self, trigger_id: int) -> None:
        self.loop.call_soon_threadsafe(self._cancel, trigger_id)

    def _spawn(self, trigger_id: int, trigger: BaseTrigger) -> None:
        if trigger_id in self._tasks:
            return  # deduplicated: one asyncio task per trigger row
        self._tasks[trigger_id] = self.loop.create_task(self._run(trigger_id, trigger), name=f"trigger-{trigger_id}")

    def _cancel(self, trigger_id: int) -> None:
        task = self._tasks.pop(trigger_id, None)
        if task is not None:
            task.cancel()

    async def _run(self, trigger_id: int, trigger: BaseTrigger) -> None:
        from zonda.runner.deferral import first_event

        try:
            payload = await first_event(trigger)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.outcomes.put(Outcome(trigger_id, "error", traceback.format_exc(), utcnow()))
        else:
            self.outcomes.put(Outcome(trigger_id, "event", payload, utcnow()))
        finally:
            if self._tasks.get(trigger_id) is asyncio.current_task():
                del self._tasks[trigger_id]

    def stop(self, timeout: float = 5.0) -> None:
        async def shutdown() -> None:
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            await self.loop.shutdown_default_executor()

        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout + 1)
            except Exception as exc:  # a trigger that will not stop must not hang the shutdown
                log.warning("triggers did not all stop within %.0f s: %s", timeout, exc)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


class Triggerer:
    """Runs the triggers of deferred task instances, up to ``capacity`` at a time."""

    def __init__(
        self,
        settings: Settings,
        metastore: Metastore | None = None,
        capacity: int = 1000,
        *,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self._metastore = metastore
        self._owns_metastore = metastore is None
        self.capacity = max(1, int(capacity))
        self.poll_interval = max(float(poll_interval), 0.01)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = float(settings.get("scheduler", "scheduler_heartbeat_timeout"))
        self.job_id: int | None = None
        #: Called with each :class:`Outcome` once its task instances are written (tests, benchmarks).
        self.on_outcome: Callable[[Outcome], None] | None = None
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._loop: _TriggerLoop | None = None
        #: Trigger ids running in the loop (database-thread view).
        self._active: set[int] = set()
        self._last_heartbeat = 0.0
        self._last_sync = 0.0
        #: Fired triggers not yet written (an outage interrupted the write): written by the next cycle.
        self._unwritten: list[Outcome] = []
        #: Keeps :meth:`run` going through metastore outages (backoff, one log line per outage).
        self.outage = OutageGuard(
            "triggerer", max_delay=float(settings.get("database", "outage_backoff_max")), logger=log
        )

    # --- life cycle -----------------------------------------------------------------------------------------

    @property
    def metastore(self) -> Metastore:
        if self._metastore is None:
            from zonda.metastore.db import Metastore

            self._metastore = Metastore.open(self.settings)
        return self._metastore

    @property
    def engine(self) -> Any:
        return self.metastore.engine

    @property
    def locking(self) -> bool:
        return self.metastore.supports_row_locks

    @property
    def running_triggers(self) -> int:
        return len(self._active)

    def start(self) -> None:
        if self.job_id is not None:
            return
        self.job_id = jobs.start_job(self.engine, "triggerer")
        self._last_heartbeat = time.monotonic()
        self._loop = _TriggerLoop(self._outcomes)
        self._loop.start()
        log.info("triggerer started (job %s, capacity %s, %s)", self.job_id, self.capacity, self.metastore)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (the caller sets it on SIGTERM / SIGINT). Started while the metastore is
        down, it waits for the metastore first."""
        self.outage.stop = stop
        url = self._metastore.url if self._metastore is not None else self.settings.sql_alchemy_conn
        self.outage.until_available(self.start, url=url)
        try:
            while not stop.is_set():
                due = self._last_sync + self.poll_interval - time.monotonic()
                try:
                    if due <= 0:
                        self._cycle(sync=True, wait=0.0)
                    else:
                        # Wake for fired events at once, for stop within 0.25 s, for the next sync on time.
                        self._cycle(sync=False, wait=min(due, 0.25))
                except Exception as exc:
                    self.outage.failed(exc)  # waits out a metastore outage; anything else is raised again
                    # The next cycle syncs, so it reaches the database: a cycle that only waited for events
                    # must not pass for the end of the outage (and a second outage logged right after).
                    self._last_sync = 0.0
                    continue
                self.outage.succeeded()
        finally:
            self.shutdown()

    def run_once(self, timeout: float = 0.0) -> TriggererPass:
        """One pass (tests): heartbeat, time-outs, claim and start triggers, then wait up to ``timeout`` s for
        events (returning as soon as one fired) and write what fired."""
        self.start()
        return self._cycle(sync=True, wait=timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel the running triggers, write what already fired, hand the rest back, end the job row."""
        if self.job_id is None:
            return
        try:
            if self._loop is not None:
                self._loop.stop(timeout)
                self._loop = None
            self._write_outcomes(self._drain(0.0), TriggererPass())
            self._active.clear()
            with self.engine.begin() as conn:
                conn.execute(update(t.trigger).where(t.trigger.c.triggerer_id == self.job_id).values(triggerer_id=None))
            jobs.end_job(self.engine, self.job_id)
            log.info("triggerer stopped (job %s)", self.job_id)
        finally:
            self.job_id = None
            if self._owns_metastore and self._metastore is not None:
                self._metastore.dispose()

    # --- one cycle --------------------------------------------------------------------------------------------

    def _cycle(self, *, sync: bool, wait: float) -> TriggererPass:
        report = TriggererPass()
        now_mono = time.monotonic()
        if now_mono - self._last_heartbeat >= self.heartbeat_interval:
            jobs.heartbeat(self.engine, self.job_id)  # type: ignore[arg-type]
            self._last_heartbeat = now_mono
        if sync:
            self._last_sync = now_mono
            report.timed_out = self._expire_timeouts()
            self._clean_unused()
            self._claim()
            self._sync(report)
        self._unwritten.extend(self._drain(wait))
        if self._unwritten:
            self._write_outcomes(self._unwritten, report)  # an outage raises here: they are written next time
            self._unwritten = []
        return report

    def _drain(self, wait: float) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            outcomes.append(self._outcomes.get(timeout=wait) if wait > 0 else self._outcomes.get_nowait())
        except queue.Empty:
            return outcomes
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                return outcomes

    # --- claiming and syncing ---------------------------------------------------------------------------------

    def _claim(self) -> int:
        """Take unassigned triggers and those of triggerers that are gone, up to the free capacity."""
        free = self.capacity - len(self._active)
        if free <= 0:
            return 0
        trig = t.trigger
        if self.outage.quiet_for() < self.heartbeat_timeout:
            # Just after an outage every other triggerer's heartbeat looks stale: take only unassigned ones.
            unowned = trig.c.triggerer_id.is_(None)
        else:
            alive = {row.id for row in jobs.alive_jobs(self.engine, "triggerer", self.heartbeat_timeout)}
            alive.add(self.job_id)  # type: ignore[arg-type]
            unowned = or_(trig.c.triggerer_id.is_(None), trig.c.triggerer_id.notin_(sorted(alive)))
        with self.engine.begin() as conn:
            query = select(trig.c.id).where(unowned).order_by(trig.c.id).limit(free)
            if self.locking:
                query = query.with_for_update(skip_locked=True)
            ids = [row[0] for row in conn.execute(query)]
            claimed = 0
            for chunk in _chunks(ids):
                result = conn.execute(
                    update(trig).where(trig.c.id.in_(chunk), unowned).values(triggerer_id=self.job_id)
                )
                claimed += result.rowcount or 0
        if claimed:
            log.info("claimed %s trigger(s)", claimed)
        return claimed

    def _sync(self, report: TriggererPass) -> None:
        """Start the triggers this triggerer owns and does not run yet; cancel those it no longer owns."""
        from zonda.exceptions import TriggerError
        from zonda.triggers.base import trigger_from_row

        assert self._loop is not None
        trig = t.trigger
        with self.engine.connect() as conn:
            owned = {row[0] for row in conn.execute(select(trig.c.id).where(trig.c.triggerer_id == self.job_id))}
            new = sorted(owned - self._active)
            rows = []
            for chunk in _chunks(new[: max(self.capacity - len(self._active), 0)]):
                rows.extend(
                    conn.execute(select(trig.c.id, trig.c.classpath, trig.c.kwargs).where(trig.c.id.in_(chunk))).all()
                )
            conn.rollback()
        for gone in self._active - owned:
            self._loop.cancel(gone)
            self._active.discard(gone)
            report.cancelled += 1
        failures: list[Outcome] = []
        for row in rows:
            try:
                trigger = trigger_from_row(row.classpath, row.kwargs)
            except TriggerError:
                failures.append(Outcome(row.id, "error", traceback.format_exc(), utcnow()))
                continue
            self._active.add(row.id)
            self._loop.submit(row.id, trigger)
            report.started += 1
        if failures:
            self._write_outcomes(failures, report)

    def _clean_unused(self) -> int:
        """Delete triggers no deferred task instance waits on any more (cleared, marked, timed out)."""
        ti, trig = t.task_instance, t.trigger
        used = select(ti.c.trigger_id).where(
            ti.c.state == TaskInstanceState.DEFERRED.value, ti.c.trigger_id.is_not(None)
        )
        with self.engine.begin() as conn:
            result = conn.execute(delete(trig).where(trig.c.id.notin_(used)))
        return result.rowcount or 0

    def _expire_timeouts(self) -> int:
        """Deferred instances whose ``trigger_timeout`` passed go back to ``scheduled`` to fail their try."""
        return expire_deferred_timeouts(self.engine)

    # --- writing what fired -----------------------------------------------------------------------------------

    def _write_outcomes(self, outcomes: Iterable[Outcome], report: TriggererPass) -> None:
        from zonda import serde
        from zonda.runner.deferral import TRIGGER_ERROR_METHOD

        outcomes = list(outcomes)
        by_trigger = {o.trigger_id: o for o in outcomes}
        ti, trig = t.task_instance, t.trigger
        now = utcnow()
        events: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            rows = []
            for chunk in _chunks(sorted(by_trigger)):
                rows.extend(
                    conn.execute(
                        select(ti.c.id, ti.c.trigger_id, ti.c.next_kwargs, ti.c.dag_id, ti.c.task_id).where(
                            ti.c.trigger_id.in_(chunk), ti.c.state == TaskInstanceState.DEFERRED.value
                        )
                    ).all()
                )
            for row in rows:
                outcome = by_trigger[row.trigger_id]
                if outcome.kind == "event":
                    kwargs = _load_kwargs(row.next_kwargs)
                    kwargs["event"] = outcome.value
                    events.append({"b_id": row.id, "b_kwargs": serde.dumps(kwargs)})
                else:
                    log.error(
                        "trigger %s of %s.%s failed; the task resumes to fail:\n%s",
                        row.trigger_id,
                        row.dag_id,
                        row.task_id,
                        outcome.value,
                    )
                    errors.append({"b_id": row.id, "b_kwargs": serde.dumps({"error": outcome.value})})
            transitions.resume_deferred_tis(conn, events, now=now)
            transitions.resume_deferred_tis(conn, errors, next_method=TRIGGER_ERROR_METHOD, now=now)
            for chunk in _chunks(sorted(by_trigger)):
                conn.execute(delete(trig).where(trig.c.id.in_(chunk)))
        for outcome in outcomes:
            self._active.discard(outcome.trigger_id)  # the loop already dropped its task: memory released
            if outcome.kind == "event":
                report.fired += 1
            else:
                report.failed += 1
        report.rescheduled += len(events) + len(errors)
        report.outcomes.extend(outcomes)
        if self.on_outcome is not None:
            for outcome in outcomes:
                self.on_outcome(outcome)


def expire_deferred_timeouts(engine: Any, now: datetime | None = None) -> int:
    """Move deferred instances whose ``trigger_timeout`` passed to ``scheduled`` with
    ``next_method="__trigger_timeout__"``, so their next worker fails the try with a clear message (retries
    apply). Safe to call from any process (a scheduler too): each row moves only while still ``deferred``."""
    from zonda import serde
    from zonda.runner.deferral import TRIGGER_TIMEOUT_METHOD, timeout_message

    ti = t.task_instance
    now = now or utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            select(ti.c.id, ti.c.trigger_timeout, ti.c.dag_id, ti.c.task_id).where(
                ti.c.state == TaskInstanceState.DEFERRED.value,
                ti.c.trigger_timeout.is_not(None),
                ti.c.trigger_timeout < now,
            )
        ).all()
        if not rows:
            return 0
        params = [
            {"b_id": r.id, "b_kwargs": serde.dumps({"error": timeout_message(deadline=r.trigger_timeout)})}
            for r in rows
        ]
        transitions.resume_deferred_tis(conn, params, next_method=TRIGGER_TIMEOUT_METHOD, now=now)
    for r in rows:
        log.warning("%s.%s: its trigger timed out (%s); it resumes to fail", r.dag_id, r.task_id, r.trigger_timeout)
    return len(rows)


def _load_kwargs(text: str | None) -> dict[str, Any]:
    from zonda import serde

    if not text:
        return {}
    try:
        value = serde.loads(text)
    except Exception:
        return {}
    return dict(value) if isinstance(value, dict) else {}


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
