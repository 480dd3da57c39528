"""LocalExecutor: parallel task processes on this machine, forked from warm workers.

At start, ``parallelism`` worker processes are forked from the scheduler (Zonda and SQLAlchemy already
imported). Each worker takes a workload, forks a child for it (so a crashing or leaking task never takes the
worker down, and ``kill -9`` of a task is seen as that child's exit status) and reports the exit status back.
A no-op task therefore pays a fork, not an interpreter start-up and imports. Workers keep DAG files they have
parsed (re-parsed when the file changes), so children inherit them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import time
from typing import Any, ClassVar

from zonda.executors.base import BaseExecutor, TaskEvent, Workload

log = logging.getLogger("zonda.executors.local")

_STOP = None


def _worker_main(tasks: Any, results: Any, settings_home: str | None) -> None:
    """Worker loop (a forked process): run each workload in a forked child, report its exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from zonda.executors.supervisor import Supervisor
    from zonda.executors.workload import WorkloadRunner

    supervisor = Supervisor(WorkloadRunner(home=settings_home))
    while True:
        try:
            item = tasks.get()
        except (EOFError, OSError):
            return
        if item is _STOP:
            return
        workload = Workload(**item)
        try:
            code = supervisor.execute(workload, on_started=lambda pid, item=item: results.put(("started", item, pid)))
        except Exception:  # the worker must survive anything a workload does
            log.exception("worker failed to run %s", workload.label)
            code = 1
            results.put(("ended", item, code))
            continue
        results.put(("ended", item, code))


class LocalExecutor(BaseExecutor):
    name: ClassVar[str] = "LocalExecutor"

    def __init__(self, parallelism: int = 32, settings: Any = None, workers: int | None = None) -> None:
        super().__init__(parallelism, settings)
        self.worker_count = min(self.parallelism, workers or self.parallelism)
        self._ctx = multiprocessing.get_context("fork")
        self._tasks: Any = None
        self._results: Any = None
        self._workers: list[Any] = []
        self.pids: dict[tuple[str, str, str, int], int] = {}

    def start(self) -> None:
        self._tasks = self._ctx.SimpleQueue()
        self._results = self._ctx.Queue()
        home = str(self.settings.home) if self.settings is not None else None
        for index in range(self.worker_count):
            proc = self._ctx.Process(
                target=_worker_main, args=(self._tasks, self._results, home), name=f"zonda-worker-{index}", daemon=True
            )
            proc.start()
            self._workers.append(proc)

    def queue(self, workload: Workload) -> None:
        self.running[workload.key] = workload
        self._tasks.put(workload.to_dict())

    def poll(self, timeout: float) -> list[TaskEvent]:
        events: list[TaskEvent] = []
        deadline = time.monotonic() + max(timeout, 0.0)
        block = timeout > 0
        while True:
            try:
                kind, item, value = self._results.get(block=block, timeout=max(deadline - time.monotonic(), 0.0001))
            except queue_module.Empty:
                break
            workload = Workload(**item)
            if kind == "started":
                self.pids[workload.key] = value
            else:
                self.running.pop(workload.key, None)
                self.pids.pop(workload.key, None)
                events.append(TaskEvent(workload, value))
            block = False  # got something: drain what else is there without waiting
        return events

    def end(self, timeout: float = 30.0) -> None:
        for _ in self._workers:
            with contextlib.suppress(Exception):
                self._tasks.put(_STOP)
        deadline = time.monotonic() + timeout
        for proc in self._workers:
            proc.join(max(deadline - time.monotonic(), 0.1))
        self.terminate()

    def terminate(self) -> None:
        for pid in list(self.pids.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for proc in self._workers:
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
                if proc.is_alive():
                    proc.kill()
        self._workers.clear()


class SequentialExecutor(LocalExecutor):
    """One task at a time (the default with SQLite, whose writers serialize anyway)."""

    name: ClassVar[str] = "SequentialExecutor"

    def __init__(self, parallelism: int = 1, settings: Any = None, workers: int | None = None) -> None:
        super().__init__(1, settings, workers=1)
