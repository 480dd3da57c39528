"""LocalExecutor: parallel task processes on this machine, forked from warm workers.

At start, ``parallelism`` worker processes are forked from the scheduler (Zonda and SQLAlchemy already
imported). Each worker runs workloads in a forked task process (so a crashing task never takes the worker
down, and ``kill -9`` of a task is seen as that process's exit status) and reports the exit status back. A
task process runs up to ``[local_executor] tasks_per_process`` workloads one after another before a fresh one
is forked, so a no-op task pays neither an interpreter start-up nor, most of the time, a fork. Workers keep DAG
files they have parsed (re-parsed when the file changes), so task processes inherit them.
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


def _worker_main(index: int, tasks: Any, results: Any, settings: Any) -> None:
    """Worker loop (a forked process): run each workload in a forked child, report its exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from zonda.executors.supervisor import Supervisor
    from zonda.executors.workload import WorkloadRunner

    parent = os.getppid()
    supervisor = Supervisor(WorkloadRunner(home=str(settings.home) if settings else None, settings=settings))
    results.put(("ready", None, os.getpid(), index))
    try:
        _serve_workloads(index, tasks, results, supervisor, parent)
    finally:
        supervisor.close()


def _serve_workloads(index: int, tasks: Any, results: Any, supervisor: Any, parent: int) -> None:
    while True:
        try:
            # Wake up now and then to notice a scheduler that died (kill -9): an orphaned worker finishes
            # its current task (above) and then exits instead of holding a connection forever.
            if not tasks._reader.poll(1.0):
                if os.getppid() != parent:
                    log.warning("worker %s: the scheduler (pid %s) is gone; exiting", os.getpid(), parent)
                    return
                continue
            item = tasks.get()
        except (EOFError, OSError):
            return
        if item is _STOP:
            return
        workload = Workload(**item)
        try:
            code = supervisor.execute(
                workload, on_started=lambda pid, item=item: results.put(("started", item, pid, index))
            )
        except Exception:  # the worker must survive anything a workload does
            log.exception("worker failed to run %s", workload.label)
            code = 1
        results.put(("ended", item, code, index))


class LocalExecutor(BaseExecutor):
    name: ClassVar[str] = "LocalExecutor"

    def __init__(self, parallelism: int = 32, settings: Any = None, workers: int | None = None) -> None:
        super().__init__(parallelism, settings)
        self.worker_count = min(self.parallelism, workers or self.parallelism)
        self._ctx = multiprocessing.get_context("fork")
        self._queues: list[Any] = []
        self._results: Any = None
        self._workers: list[Any] = []
        #: Idle workers, most recently used last: work goes to the warmest worker (its connection, statement
        #: cache and parsed DAG files are hot), so a chain of tasks keeps reusing one process.
        self._idle: list[int] = []
        self._pending: list[Workload] = []
        self.pids: dict[tuple[str, str, str, int], int] = {}

    def start(self) -> None:
        self._results = self._ctx.Queue()
        for index in range(self.worker_count):
            tasks = self._ctx.SimpleQueue()
            proc = self._ctx.Process(
                target=_worker_main,
                args=(index, tasks, self._results, self.settings),
                name=f"zonda-worker-{index}",
                daemon=True,
            )
            proc.start()
            self._queues.append(tasks)
            self._workers.append(proc)
        self._idle = list(reversed(range(self.worker_count)))
        # Wait (bounded) until every worker is warm: connected, statements compiled, modules imported.
        ready = 0
        deadline = time.monotonic() + 60
        while ready < self.worker_count and time.monotonic() < deadline:
            try:
                kind, *_ = self._results.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue_module.Empty:
                break
            if kind == "ready":
                ready += 1
        if ready < self.worker_count:
            log.warning("only %s of %s executor workers reported ready", ready, self.worker_count)

    def queue(self, workload: Workload) -> None:
        self.running[workload.key] = workload
        if self._idle:
            self._queues[self._idle.pop()].put(workload.to_dict())
        else:
            self._pending.append(workload)

    def poll(self, timeout: float) -> list[TaskEvent]:
        events: list[TaskEvent] = []
        deadline = time.monotonic() + max(timeout, 0.0)
        block = timeout > 0
        while True:
            try:
                kind, item, value, index = self._results.get(
                    block=block, timeout=max(deadline - time.monotonic(), 0.0001)
                )
            except queue_module.Empty:
                break
            if kind == "ready":
                continue
            workload = Workload(**item)
            if kind == "started":
                self.pids[workload.key] = value
            else:
                self.running.pop(workload.key, None)
                self.pids.pop(workload.key, None)
                events.append(TaskEvent(workload, value))
                if self._pending:
                    self._queues[index].put(self._pending.pop(0).to_dict())
                else:
                    self._idle.append(index)
            block = False  # got something: drain what else is there without waiting
        return events

    def end(self, timeout: float = 30.0) -> None:
        for tasks in self._queues:
            with contextlib.suppress(Exception):
                tasks.put(_STOP)
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
