"""LocalExecutor: parallel task processes on this machine, forked from warm workers.

At start, ``parallelism`` worker processes are forked from the scheduler. Before the fork, the scheduler imports
what they need, creates their metastore engine and compiles its hot statements, then freezes its heap, so the
workers share those pages instead of each building a private copy (idle memory of 32 workers: about a quarter
of what it was). Each worker runs workloads in a forked task process (so a crashing task never takes the worker
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
import signal
import time
from typing import Any, ClassVar

from zonda.executors.base import BaseExecutor, ExecutorCapabilities, TaskEvent, Workload

log = logging.getLogger("zonda.executors.local")

_STOP = None


def _worker_main(
    index: int,
    tasks: Any,
    results: Any,
    settings: Any,
    metastore: Any = None,
    warmed: bool = False,
    plugins: Any = None,
) -> None:
    """Worker loop (a forked process): run each workload in a forked child, report its exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from zonda.executors.supervisor import Supervisor
    from zonda.executors.workload import WorkloadRunner

    parent = os.getppid()
    runner = WorkloadRunner(home=str(settings.home) if settings else None, settings=settings)
    supervisor = Supervisor(runner, metastore=metastore, warmed=warmed, plugins=plugins)
    results.put(("ready", os.getpid(), index))
    try:
        _serve_workloads(index, tasks, results, supervisor, parent)
    finally:
        supervisor.close()


def _serve_workloads(index: int, tasks: Any, results: Any, supervisor: Any, parent: int) -> None:
    """Messages to the executor are ``(kind, value, worker index)``; it knows which workload each worker has.
    ``started`` carries a task process's pid and is sent only for a new process (a kept one has the same pid)."""
    reported_pid = 0

    def started(pid: int) -> None:
        nonlocal reported_pid
        if pid != reported_pid:
            results.put(("started", pid, index))
            reported_pid = pid

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
            code = supervisor.execute(workload, on_started=started)
        except Exception:  # the worker must survive anything a workload does
            log.exception("worker failed to run %s", workload.label)
            code = 1
        results.put(("ended", code, index))


class LocalExecutor(BaseExecutor):
    name: ClassVar[str] = "LocalExecutor"
    capabilities: ClassVar[ExecutorCapabilities] = ExecutorCapabilities(keeps_warm_processes=True, supports_sqlite=True)

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
        #: The workers' metastore, created and warmed here before forking them (None: each builds its own).
        self._metastore: Any = None
        self._warmed = False
        #: The workers' plugins, loaded here before forking them (None: each loads its own).
        self._plugins: Any = None
        #: What each busy worker runs, and the pid of each worker's current task process.
        self._busy: dict[int, Workload] = {}
        self._task_pids: dict[int, int] = {}
        self._next_worker_check = 0.0

    def _preload(self) -> None:
        """Import here, once, what every worker would otherwise import after the fork (the task runner's
        modules, the plugins, the metastore's dialect and driver), then freeze the heap so collections in the
        workers never touch it: the workers share those pages with this process instead of each holding a
        private copy."""
        import gc

        from zonda.executors.supervisor import import_warm_modules, prepare_worker

        if self.settings is None:
            import_warm_modules()
        else:
            from zonda.executors.supervisor import warm_up_statements
            from zonda.metastore.db import Metastore
            from zonda.runner.store import MetastoreRunStore

            self._plugins = prepare_worker(self.settings)
            try:
                metastore = Metastore.from_settings(self.settings)
                store = MetastoreRunStore(metastore)
                # One connection, closed again before the fork: the workers inherit compiled statements only.
                self._warmed = warm_up_statements(store)
                store.close()
                metastore.dispose()
                self._metastore = metastore
            except Exception as exc:  # a bad URL is reported by the scheduler itself, with its fix
                log.debug("metastore not preloaded for the workers: %s", exc)
        gc.collect()
        gc.freeze()

    def start(self) -> None:
        import gc

        self._preload()
        # A SimpleQueue: workers write their (small) messages straight into the pipe, with no feeder thread
        # to wake per message as multiprocessing.Queue has.
        self._results = self._ctx.SimpleQueue()
        for index in range(self.worker_count):
            try:
                tasks, proc = self._start_worker(index)
            except BaseException:
                gc.unfreeze()
                raise
            self._queues.append(tasks)
            self._workers.append(proc)
        gc.unfreeze()  # forked: this process's own collections go on as before
        self._idle = list(reversed(range(self.worker_count)))
        # Wait (bounded) until every worker is warm: connected, statements compiled, modules imported.
        ready = 0
        deadline = time.monotonic() + 60
        while ready < self.worker_count and time.monotonic() < deadline:
            if not self._results._reader.poll(max(deadline - time.monotonic(), 0.01)):
                break
            kind, *_ = self._results.get()
            if kind == "ready":
                ready += 1
        if ready < self.worker_count:
            log.warning("only %s of %s executor workers reported ready", ready, self.worker_count)

    def _start_worker(self, index: int) -> tuple[Any, Any]:
        """Fork worker ``index`` with a task queue of its own: (that queue, the process)."""
        tasks = self._ctx.SimpleQueue()
        proc = self._ctx.Process(
            target=_worker_main,
            args=(index, tasks, self._results, self.settings, self._metastore, self._warmed, self._plugins),
            name=f"zonda-worker-{index}",
            daemon=True,
        )
        proc.start()
        return tasks, proc

    def queue(self, workload: Workload) -> None:
        self.running[workload.key] = workload
        if self._idle:
            self._send(self._idle.pop(), workload)
        else:
            self._pending.append(workload)

    def _send(self, index: int, workload: Workload) -> None:
        self._busy[index] = workload
        self._queues[index].put(workload.to_dict())

    def poll(self, timeout: float) -> list[TaskEvent]:
        events = self._read_results(timeout)
        now = time.monotonic()
        if now >= self._next_worker_check:
            self._next_worker_check = now + self.WORKER_CHECK_INTERVAL
            dead = [index for index, proc in enumerate(self._workers) if proc.exitcode is not None]
            if dead:
                events.extend(self._read_results(0))  # what they said before dying comes first
                events.extend(event for index in dead if (event := self._replace_worker(index)) is not None)
        return events

    #: How often :meth:`poll` looks for dead workers (seconds): a ``waitpid`` per worker.
    WORKER_CHECK_INTERVAL = 0.5

    def _replace_worker(self, index: int) -> TaskEvent | None:
        """Worker ``index`` died (kill -9, the OOM killer): its workload, queued or running, is reported ended
        with the worker's exit status (its task process ended with it, see the supervisor), and a fresh worker
        takes its place, so the executor keeps its parallelism.

        The new worker is forked from this process, which may run other threads by now (the DAG processor, the
        triggerer): it only runs the worker loop, whose locks (logging, imports) Python makes safe across a fork."""
        dead = self._workers[index]
        workload = self._busy.pop(index, None)
        task_pid = self._task_pids.pop(index, None)
        log.error(
            "executor worker %s (pid %s) died with exit status %s%s; starting a new one",
            index,
            dead.pid,
            dead.exitcode,
            f" while running {workload.label}" if workload is not None else "",
        )
        dead.join(0)
        self._queues[index], self._workers[index] = self._start_worker(index)
        if index not in self._idle:
            if self._pending:
                self._send(index, self._pending.pop(0))
            else:
                self._idle.append(index)
        if workload is None:
            return None
        self.running.pop(workload.key, None)
        return TaskEvent(workload, dead.exitcode, error="the executor worker died", pid=task_pid)

    def _read_results(self, timeout: float) -> list[TaskEvent]:
        """The workers' messages: the workloads that ended, waiting up to ``timeout`` seconds for the first."""
        events: list[TaskEvent] = []
        reader = self._results._reader
        deadline = time.monotonic() + max(timeout, 0.0)
        wait = max(timeout, 0.0)
        while reader.poll(wait):
            kind, value, index = self._results.get()
            wait = 0.0  # got something: drain what else is there without waiting
            if kind == "started":
                self._task_pids[index] = value
            elif kind == "ended":
                workload = self._busy.pop(index, None)
                if workload is None:
                    continue
                self.running.pop(workload.key, None)
                events.append(TaskEvent(workload, value, pid=self._task_pids.get(index)))
                if self._pending:
                    self._send(index, self._pending.pop(0))
                else:
                    self._idle.append(index)
            if not events and timeout > 0:
                wait = max(deadline - time.monotonic(), 0.0)  # only "ready"/"started" so far: keep waiting
        return events

    @property
    def pids(self) -> dict[tuple[str, str, str, int], int]:
        """The task process of each running workload (pid), as far as the workers reported them."""
        return {w.key: self._task_pids[i] for i, w in self._busy.items() if i in self._task_pids}

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
    capabilities: ClassVar[ExecutorCapabilities] = ExecutorCapabilities(
        keeps_warm_processes=True, supports_sqlite=True, max_parallelism=1
    )

    def __init__(self, parallelism: int = 1, settings: Any = None, workers: int | None = None) -> None:
        super().__init__(parallelism, settings, workers=1)
