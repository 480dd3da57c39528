"""The worker side of a task process: the worker watches and heartbeats, the task process talks to the metastore.

A LocalExecutor worker hands each workload to a task process (forked, or an idle one kept from an earlier
workload), waits for it to end and heartbeats for it. The task process loads its row, claims it, runs the try
and records the end state on its own metastore connection, opened once per process and kept for the workloads
it runs (``[local_executor] tasks_per_process``). It shares the worker's engine, so statements the worker
compiled at warm-up are compiled for it too, and it imports nothing new. A no-op task therefore costs three
statements and two small messages each way, with no round trip through the worker in between. When the row is
taken away (a heartbeat finds another owner), the worker SIGTERMs the task; when the task process dies
(kill -9), the worker reports its exit status.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zonda.executors.ownership import lost

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from zonda.executors.base import Workload
    from zonda.executors.workload import WorkloadRunner
    from zonda.plugins.manager import PluginFolderWatch, PluginManager

log = logging.getLogger("zonda.executors.supervisor")

#: Modules a worker and its task processes need: imported once in the executor before it forks the workers (an
#: import after the fork copied about 2.5 MB of shared pages into each worker), so they all start warm.
WARM_MODULES = (
    "zonda.executors.workload",
    "zonda.runner.task_runner",
    "zonda.runner.dag_runner",
    "zonda.runner.instance",
    "zonda.runner.logs",
    "zonda.runner.log_handlers",
    "zonda.runner.timeout",
    "zonda.context",
    "zonda.macros",
    "zonda.masking",
    "zonda.secrets",
    "zonda.hooks.base",
    "zonda.plugins.manager",
    "zonda.xcom",
    "zonda.xcom_arg",
    "zonda.serde",
    "zonda.runtime",
    "zonda.cli._loading",
    "zonda.operators.python",
    "zonda.operators.empty",
    "ctypes",  # each task process asks the kernel to end it with its worker (_end_with_worker)
    # Imported by every task (prepare_task_process, the attempt's log file): not once per forked task process.
    "zonda.variable",
    "zonda.private_files",
)

#: Seconds between two looks at the plugins folder by a worker (before a task; a few ``stat`` calls each). A
#: plugin file saved while tasks keep starting is used from the first task this long after the last look.
PLUGIN_LOOK_INTERVAL = 0.25


def warm_up_statements(store: Any) -> bool:
    """Run the statements every task uses once, against no row, so their compiled forms are in the engine's
    cache. True when it worked; the metastore may still be starting, and the first task compiles them then."""
    from zonda.runner.store import DagRunInfo
    from zonda.state import TaskInstanceState

    try:
        store.load_task_instance(-1)
        nobody = DagRunInfo("", "", None, None, None, id=-1)
        store.claim_task_instance(nobody, "", -1, {"state": TaskInstanceState.RUNNING.value})
        store.finish_owned_task_instance(nobody, "", -1, {"state": TaskInstanceState.SUCCESS.value}, pid=-1)
    except Exception as exc:
        log.debug("statement warm-up failed: %s", exc)
        return False
    return True


@dataclass(frozen=True)
class WorkerPlugins:
    """What a worker loaded of the plugins, and the watch that says when the folder no longer matches it."""

    watch: PluginFolderWatch
    manager: PluginManager


def prepare_worker(settings: Any) -> WorkerPlugins:
    """Import what task processes need and load the plugins. The LocalExecutor calls this once before forking
    its workers, so all of them share these pages (each worker loading plugins itself, an entry-point scan
    included, made about 1.5 MB of private memory per worker); a worker calls it only when not given them."""
    import_warm_modules()
    return load_worker_plugins(settings)


def import_warm_modules() -> None:
    """Import :data:`WARM_MODULES` (Zonda's own code, never the user's)."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)


def load_worker_plugins(settings: Any) -> WorkerPlugins:
    """Fingerprint the plugins folder, then build the plugin manager with discovery done and the task-log
    handler imported. The fingerprint comes first: a file changed while loading shows as a change later."""
    from zonda.plugins.manager import PluginFolderWatch, PluginManager

    watch = PluginFolderWatch(settings.plugins_folder, min_interval=PLUGIN_LOOK_INTERVAL)
    manager = PluginManager.from_settings(settings)
    manager.has_implementations("on_task_instance_running")  # discover once, here
    _warm_log_handler(settings, manager)
    return WorkerPlugins(watch, manager)


def _warm_log_handler(settings: Any, plugins: PluginManager) -> None:
    """Import the configured task-log handler's class here, once, so task processes inherit it (a handler
    shipping to a server may import a heavy client library). A bad name is reported by each task instead."""
    from zonda.exceptions import ZondaException
    from zonda.runner.log_handlers import task_log_handler_class

    try:
        task_log_handler_class(str(settings.get("logging", "task_log_handler")), plugins)
    except ZondaException as exc:
        log.debug("task log handler not preloaded: %s", exc)


class Supervisor:
    """Lives in a worker process."""

    def __init__(
        self,
        runner: WorkloadRunner,
        *,
        metastore: Any = None,
        warmed: bool = False,
        plugins: WorkerPlugins | None = None,
    ) -> None:
        """``metastore``: the executor's, created (and, when ``warmed``, its statements compiled) before the
        fork, so this worker and its task processes share that engine's pages instead of building their own.
        ``plugins``: likewise loaded before the fork (see :func:`prepare_worker`); built here when not given."""
        self.runner = runner
        self.settings = runner._settings()
        self.heartbeat_interval = float(self.settings.get("scheduler", "task_heartbeat_interval"))
        if plugins is None:
            plugins = prepare_worker(self.settings)
        self._plugin_watch = plugins.watch
        runner.plugins = plugins.manager
        self._metastore = metastore
        self._store: Any = None
        self.tasks_per_process = max(1, int(self.settings.get("local_executor", "tasks_per_process")))
        self._idle_child: _TaskProcess | None = None
        self._worker_pid = os.getpid()
        if not warmed:
            self._warm_up()
        # Everything loaded so far lives as long as the worker: keep it out of the collector's reach, so task
        # processes' collections do not touch (and copy) the pages they share with the worker.
        gc.freeze()

    def _reload_plugins(self, change: Any) -> None:
        """The plugins folder changed since this worker imported it: let a kept task process go, forget the
        folder's modules and the DAG files parsed with them, and build a new plugin manager, so the next task
        process is forked with what is on disk now (a task never runs with a plugin older than its start)."""
        from zonda.plugins.manager import forget_folder_modules

        log.debug("worker %s: plugins folder changed (%s); reloading plugins", os.getpid(), change)
        child, self._idle_child = self._idle_child, None
        if child is not None:
            self._reap(child)
        forget_folder_modules(self.settings.plugins_folder)
        self.runner.forget_parsed_dags()
        plugins = load_worker_plugins(self.settings)
        self._plugin_watch = plugins.watch
        self.runner.plugins = plugins.manager

    def _warm_up(self) -> None:
        """Compile the statements every task uses now, not during the first tasks (when the executor could not
        do it for all workers before forking them)."""
        warm_up_statements(self.store)
        self._release_connection()

    def _release_connection(self) -> None:
        """Close the worker's own connection: task processes have theirs, and the worker needs one only to
        heartbeat a task that runs longer than ``task_heartbeat_interval``. An idle worker then holds none,
        which halves what a LocalExecutor asks of the database's ``max_connections``. Compiled statements stay
        in the engine."""
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
                self._store.metastore.engine.dispose()

    @property
    def store(self) -> Any:
        if self._store is None:
            from zonda.metastore.db import Metastore
            from zonda.runner.store import MetastoreRunStore

            metastore = self._metastore if self._metastore is not None else Metastore.from_settings(self.settings)
            self._store = MetastoreRunStore(metastore)
        return self._store

    def execute(self, workload: Workload, on_started: Any = None) -> int:
        """Run one workload in a task process; returns that process's exit status (0 when the try recorded
        its own end state, or found its row no longer queued). The process is forked for it, or is an idle
        one kept from an earlier workload when ``[local_executor] tasks_per_process`` allows."""
        import multiprocessing

        change = self._plugin_watch.changes()
        if change is not None:
            self._reload_plugins(change)
        try:
            self.runner.preload(workload)
        except Exception as exc:  # the task process reports the load error properly
            log.debug("preloading %s failed: %s", workload.fileloc, exc)
        child, self._idle_child = self._idle_child, None
        if child is not None:
            try:
                child.conn.send(("run", workload.to_dict()))
            except (BrokenPipeError, OSError):  # it died while idle: start a fresh one
                self._reap(child)
                child = None
        if child is None:
            parent_end, child_end = multiprocessing.Pipe(duplex=True)
            pid = os.fork()
            if pid == 0:
                parent_end.close()
                self._task_process_main(child_end, workload)
            child_end.close()
            child = _TaskProcess(pid, parent_end)
        child.runs += 1
        if on_started is not None:
            on_started(child.pid)
        code, reusable = self._serve(workload, child)
        if reusable and child.runs < self.tasks_per_process:
            self._idle_child = child
        elif reusable:
            self._reap(child)
        return code

    def _task_process_main(self, conn: Connection, workload: Workload) -> None:
        """The task process (forked): run workloads until one fails or ``tasks_per_process`` ran; never returns."""
        from zonda.executors.base import Workload as WorkloadType
        from zonda.executors.workload import execute_workload
        from zonda.runner.store import MetastoreRunStore

        code = 1
        store: MetastoreRunStore | None = None
        try:
            signal.signal(signal.SIGTERM, _raise_terminated)
            signal.signal(signal.SIGINT, _ignore_interrupt)
            _end_with_worker(self._worker_pid)
            # The worker's pooled connections are its own: forget them here without closing them (the
            # documented way for a forked child), then open this process's from the same engine.
            metastore = self.store.metastore
            metastore.engine.dispose(close=False)
            store = MetastoreRunStore(metastore)
            environ, cwd = dict(os.environ), os.getcwd()
            runs = 0
            while True:
                if runs:  # what one task did to the process's environment and folder does not reach the next
                    os.environ.clear()
                    os.environ.update(environ)
                    os.chdir(cwd)
                    signal.signal(signal.SIGTERM, _raise_terminated)
                # Until this workload says otherwise, its exit status is a failure: a process that dies in it
                # (a dead connection, anything) must not report the previous workload's success, or the
                # scheduler never learns that this one did not run.
                code = 1
                # The one entry point every executor's worker calls (zonda tasks execute too).
                code = execute_workload(self.runner, workload, store=store).executor_exit_code
                runs += 1
                if code != 0 or runs >= self.tasks_per_process or _terminated:
                    break
                try:
                    conn.send((_DONE, code))
                    # Idle between workloads: a SIGTERM now (the whole installation stopping) just ends the
                    # process, quietly; there is no task to stop and nothing to record.
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    message = conn.recv()
                    signal.signal(signal.SIGTERM, _raise_terminated)
                except (EOFError, OSError):  # the worker is gone: nothing more to run
                    break
                if message[0] != "run":
                    break
                workload = WorkloadType(**message[1])
                code = 1  # this workload's now: dying before it ends must not report the previous one's 0
                self.runner.preload(workload)  # the worker re-parsed a changed file; so does this process
        except BaseException:
            log.exception("task process for %s failed", workload.label)
        finally:
            if store is not None:  # say goodbye to the server rather than drop the socket
                with contextlib.suppress(BaseException):
                    store.close()
                    store.metastore.engine.dispose()
            os._exit(code)

    def _reap(self, child: _TaskProcess) -> None:
        """Tell an idle task process to exit and wait for it (bounded; then SIGKILL)."""
        with contextlib.suppress(OSError):
            child.conn.send(("exit",))
        child.conn.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, _ = os.waitpid(child.pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)

    def close(self) -> None:
        """The worker is stopping: let a kept task process go."""
        child, self._idle_child = self._idle_child, None
        if child is not None:
            self._reap(child)

    def _serve(self, workload: Workload, child: _TaskProcess) -> tuple[int, bool]:
        """Heartbeat for the task process until the workload ends: (exit status, whether the process is
        still alive and may take another workload)."""
        try:
            return self._watch(workload, child)
        finally:
            if child.heartbeats:  # a long task made the worker connect: let that connection go again
                child.heartbeats = 0
                self._release_connection()

    def _watch(self, workload: Workload, child: _TaskProcess) -> tuple[int, bool]:
        from zonda.runner.store import DagRunInfo

        run = DagRunInfo(workload.dag_id, workload.run_id, None, None, None, id=workload.dag_run_id)
        conn, pid = child.conn, child.pid
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            try:
                ready = conn.poll(max(next_beat - time.monotonic(), 0.0))
            except (EOFError, OSError):
                ready = False
            if ready:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break  # the task process is gone
                if message[0] == _DONE:
                    return int(message[1]), True
                log.warning("unexpected message from the task process of %s: %r", workload.label, message[0])
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                conn.close()
                return os.waitstatus_to_exitcode(status), False
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat_interval
                store = self.store
                child.heartbeats += 1
                try:
                    alive = store.heartbeat_task_instance(run, workload.task_id, workload.map_index, pid=pid)
                except Exception as exc:  # an outage: keep watching, say so once (the scheduler waits it out)
                    if not child.beat_failing:
                        log.warning("heartbeat for %s failed: %s; retrying each beat", workload.label, exc)
                    child.beat_failing = True
                    continue
                if child.beat_failing:
                    log.warning("heartbeat for %s works again", workload.label)
                    child.beat_failing = False
                # A miss may only mean the task process has not claimed the row yet, or claimed it just now.
                if not alive and lost(store.load_task_instance(workload.ti_id), pid):
                    log.error(
                        "%s: the task instance was taken over, ended or cleared elsewhere; stopping it", workload.label
                    )
                    os.kill(pid, signal.SIGTERM)
        conn.close()
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), False


#: A task process's message "this workload ended, I can take another"; the only one it sends its worker.
_DONE = "__workload_done__"


class _TaskProcess:
    """A forked task process and the worker's end of its pipe."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self.conn = conn
        self.runs = 0
        self.heartbeats = 0  # sent by the worker for the current workload
        self.beat_failing = False  # the last heartbeat failed (the metastore is unavailable)


def _end_with_worker(worker: int) -> None:
    """Have the kernel send this task process SIGTERM when its worker dies (Linux; elsewhere the heartbeat check
    catches it). Nobody would heartbeat for it or report its exit any more: it stops the way a task is stopped
    (``on_kill``, its end recorded), and the executor reports the workload ended and replaces the worker."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != worker:  # it died before the kernel was told
        os.kill(os.getpid(), signal.SIGTERM)


#: Set in a task process that received SIGTERM. The exception it raised may have interrupted anything, even a
#: section of ``logging`` that holds the module's lock without a ``finally``, so the process takes no further
#: workload: a kept process whose lock stayed held would hang in its next task, heartbeated as alive.
_terminated = False


def _ignore_interrupt(signum: int, frame: object) -> None:
    """SIGINT in a task process: a terminal's Ctrl+C reaches the whole process group, but when a running task
    stops is the scheduler's decision (after ``[scheduler] shutdown_grace_period``, with SIGTERM, so the task's
    ``on_kill`` stops what it started; dying here at once would orphan a BashOperator's command). A handler
    rather than ``SIG_IGN``: commands the task starts get the default disposition back when they ``exec``."""


def _raise_terminated(signum: int, frame: object) -> None:
    from zonda.exceptions import ZondaTaskTerminated

    global _terminated
    _terminated = True

    raise ZondaTaskTerminated("the task process received SIGTERM")
