"""CeleryExecutor: task instances go to a broker; workers on any machine run them.

Each queued instance becomes one message on the operator's ``queue``, carrying the versioned JSON workload
(never pickle). The scheduler never asks the result backend how a task went: per-task result polling is what
made Airflow's scheduler slow. The metastore is the truth: a worker's task process records its own end state,
and :meth:`CeleryExecutor.poll` reads the states of everything this executor has in flight with one query, then
reports those that left ``queued``/``running`` as ended. A task whose worker died is found by the scheduler's
heartbeat check (``task_heartbeat_timeout``) like any other.

A message that could not be sent (the broker is down) is kept, still counted in :attr:`running`, and sent again
by :meth:`CeleryExecutor.poll` once the broker answers (:class:`~zonda_celery.unsent.UnsentMessages`): a broker
outage delays tasks, it neither loses nor fails them. A message the broker lost after taking it (restarted
without persistence) is found by the scheduler's ``task_queued_timeout`` check, which queues the instance again.
A message delivered twice is harmless: the worker's claim is a compare-and-set on the instance's state and try
number. A restarted scheduler adopts what its predecessor sent (:meth:`CeleryExecutor.adopt`) rather than sending
it again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, ClassVar

from zonda.executors.base import BaseExecutor, ExecutorCapabilities, TaskEvent, Workload
from zonda.state import ACTIVE_STATES
from zonda_celery.unsent import UnsentMessages

if TYPE_CHECKING:
    import contextlib

    from celery import Celery

    from zonda.config import Settings
    from zonda.metastore.db import Metastore

log = logging.getLogger("zonda.executors.celery")

#: How often :meth:`CeleryExecutor.poll` reads the metastore while it waits (seconds).
POLL_INTERVAL = 0.05
#: Most instances read per statement (bounded IN lists).
STATES_BATCH = 500


class CeleryExecutor(BaseExecutor):
    name: ClassVar[str] = "CeleryExecutor"
    # Workers run elsewhere: no processes here, and they cannot reach a SQLite file on this machine.
    capabilities: ClassVar[ExecutorCapabilities] = ExecutorCapabilities()

    def __init__(self, parallelism: int = 32, settings: Settings | None = None) -> None:
        if settings is None:
            from zonda.config import load_settings

            settings = load_settings()
        super().__init__(parallelism, settings)
        self._settings: Settings = settings
        self._app: Celery | None = None
        self._metastore: Metastore | None = None
        self._unsent = UnsentMessages()

    @classmethod
    def standalone_workers(cls, settings: Settings) -> contextlib.AbstractContextManager[str] | None:
        """``zonda standalone`` runs one local worker (see :mod:`zonda_celery.standalone`)."""
        from zonda_celery.standalone import local_worker

        return local_worker(settings)

    @property
    def app(self) -> Celery:
        if self._app is None:
            from zonda_celery.app import build_app

            self._app = build_app(self._settings)
        return self._app

    def start(self) -> None:
        """Build the app (no connection yet: Celery connects on first send). Instances a previous scheduler
        queued are left to the workers: their messages are on the broker, and a worker's claim makes a second
        message for the same try harmless when the scheduler re-queues an orphan."""
        _ = self.app

    def queue(self, workload: Workload) -> None:
        from zonda.executors.workload_schema import InvalidWorkload, encode_workload

        try:
            document = encode_workload(workload, self._settings)
        except InvalidWorkload as exc:
            log.error("%s not sent to Celery: %s", workload.label, exc)
            return  # not running: the lost-workload check queues it again, then fails it after a few tries
        self.running[workload.key] = workload
        if self._unsent:  # the broker was down a moment ago: wait behind the others rather than stall here
            self._unsent.keep(workload, document.to_json())
            return
        self._send(workload, document.to_json())

    def _send(self, workload: Workload, text: str) -> bool:
        """Publish one workload; on failure keep it for :meth:`_send_unsent` (the broker is down)."""
        from zonda_celery.app import EXECUTE_TASK_NAME

        try:
            self.app.send_task(EXECUTE_TASK_NAME, args=[text], queue=workload.queue or "default")
        except Exception as exc:
            if not self._unsent:
                log.error("the Celery broker is unreachable; tasks wait until it is back: %s", _redacted(exc))
            self._unsent.keep(workload, text, failed=True)
            return False
        return True

    def _send_unsent(self) -> None:
        """Send what a broker outage held back, oldest first, while the broker answers (one failure stops the
        round and doubles the wait before the next one). Workloads the scheduler took back meanwhile (queued
        again, or the instance was cleared) are dropped."""
        for workload, text in self._unsent.due(lambda w: self.running.get(w.key) is w):
            if not self._send(workload, text):
                return
        if not self._unsent:
            log.info("the Celery broker is back; every held-back task was sent")

    def adopt(self, workloads: list[Workload]) -> list[Workload]:
        """All of them: their messages are on the broker (or were taken by a worker), and their ends are read
        from the metastore like those this executor sent. One that was lost on the way is found by the
        scheduler's ``task_queued_timeout`` check."""
        for workload in workloads:
            self.running[workload.key] = workload
        return list(workloads)

    def poll(self, timeout: float) -> list[TaskEvent]:
        """Instances this executor sent that are no longer queued or running, as ended events (their task
        processes recorded their end states); reads the metastore every :data:`POLL_INTERVAL` up to ``timeout``."""
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._unsent:
            self._send_unsent()
        while True:
            events = self._ended()
            remaining = deadline - time.monotonic()
            if events or remaining <= 0 or not self.running:
                if not events and remaining > 0:
                    time.sleep(remaining)  # nothing in flight: nothing can end before the scheduler's next pass
                return events
            time.sleep(min(POLL_INTERVAL, remaining))

    def _ended(self) -> list[TaskEvent]:
        if not self.running:
            return []
        from sqlalchemy import select

        from zonda.metastore import tables as t

        ti = t.task_instance
        by_id = {w.ti_id: w for w in self.running.values()}
        active = {s.value for s in ACTIVE_STATES}
        events: list[TaskEvent] = []
        ids = list(by_id)
        with self.metastore.engine.connect() as conn:
            for start in range(0, len(ids), STATES_BATCH):
                batch = ids[start : start + STATES_BATCH]
                rows = conn.execute(select(ti.c.id, ti.c.state, ti.c.try_number).where(ti.c.id.in_(batch))).all()
                seen = set()
                for row in rows:
                    seen.add(row.id)
                    workload = by_id[row.id]
                    if row.state in active and (row.try_number or 0) <= workload.try_number:
                        continue
                    events.append(TaskEvent(workload, exit_code=0))
                events.extend(TaskEvent(by_id[i], exit_code=0) for i in batch if i not in seen)  # row deleted
        for event in events:
            self.running.pop(event.workload.key, None)
        return events

    @property
    def metastore(self) -> Metastore:
        if self._metastore is None:
            from zonda.metastore.db import Metastore

            self._metastore = Metastore(self._settings.sql_alchemy_conn, pool_size=1, pre_ping=False)
        return self._metastore

    def end(self, timeout: float = 30.0) -> None:
        """Tasks belong to the workers, which outlive the scheduler: nothing to wait for here. The metastore
        stays open for the scheduler's last :meth:`poll`."""
        if self._app is not None:
            self._app.close()

    def terminate(self) -> None:
        self.end()
        if self._metastore is not None:
            self._metastore.dispose()
            self._metastore = None


def _redacted(exc: BaseException) -> str:
    from zonda.masking import get_masker

    return get_masker().redact_text(str(exc))
