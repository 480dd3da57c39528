"""Running one workload in a task process: claim the queued row, run the try, heartbeat while it runs.

:func:`execute_workload` is the one entry point where a task runs under a scheduler: the LocalExecutor's task
processes, ``zonda tasks execute`` (what Celery and Kubernetes workers call, with a JSON workload, see
:mod:`zonda.executors.workload_schema`) and ``zonda tasks run`` all call it. Ownership is explicit: the process
claims ``queued -> running`` with a compare-and-set on the state and the try number (so a try never runs twice,
even when its workload is delivered twice), writes its end state only while the row still names its pid, and a
heartbeat thread that finds the row taken away (the scheduler declared the process dead, or someone cleared the
task) stops the task without recording success.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException, ZondaTaskTerminated
from zonda.state import TaskInstanceState
from zonda.worker_logs.server import current_address as current_log_server

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.executors.base import Workload

log = logging.getLogger("zonda.executors.workload")


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _on_sigterm(signum: int, frame: object) -> None:
    raise ZondaTaskTerminated("the task process received SIGTERM")


class WorkloadRunner:
    """Lives in a worker process; parses DAG files once (per change) so forked task children inherit them."""

    def __init__(self, home: str | None = None, settings: Any = None) -> None:
        self.home = home
        self._dags: dict[str, tuple[int, Any]] = {}
        #: Settings handed over by the executor (forked, so overrides made in code reach the workers).
        self._settings_cache: Any = settings
        #: A plugin manager built once in the worker (its discovery is inherited by every task process).
        self.plugins: Any = None

    def _settings(self) -> Any:
        from zonda.config import load_settings

        if self._settings_cache is None:
            self._settings_cache = load_settings(self.home)
        return self._settings_cache

    def forget_parsed_dags(self) -> None:
        """Parse every DAG file again on next use (the plugins they import have changed)."""
        self._dags.clear()

    def preload(self, workload: Workload) -> None:
        self._bag(workload.fileloc)

    def _bag(self, fileloc: str) -> Any:
        from zonda.dagbag import DagBag

        path = Path(fileloc)
        mtime = path.stat().st_mtime_ns
        cached = self._dags.get(fileloc)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        settings = self._settings()
        if self.plugins is None:
            from zonda.plugins.manager import PluginManager

            self.plugins = PluginManager.from_settings(settings)
        # Loaded as the DAG processor parsed it: the DAGs and plugins folders on sys.path (so `import mylib` of
        # a module beside the DAG file works in the task too) and the plugins' policies applied.
        bag = DagBag.from_settings(settings, plugins=self.plugins)
        bag.process_file(path)
        self._dags[fileloc] = (mtime, bag)
        return bag

    def load_dag(self, workload: Workload) -> DAG:
        try:
            bag = self._bag(workload.fileloc)
        except OSError as exc:  # the file is not on this machine (or not readable): the try fails, saying so
            raise ZondaException(
                f"cannot read the DAG file {workload.fileloc} on {_hostname()}: {exc.strerror or exc}; deploy the "
                "DAG files to every worker"
            ) from None
        if workload.dag_id not in bag.dags:
            error = bag.import_errors.get(str(Path(workload.fileloc).resolve()))
            raise ZondaException(
                f"DAG {workload.dag_id!r} is not in {workload.fileloc}" + (f": {error}" if error else "")
            )
        return bag.dags[workload.dag_id]

    def run_in_child(self, workload: Workload) -> int:
        """Run the workload in this (task) process; the exit code says whether the process itself worked."""
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            return self.run(workload)
        except Exception:
            log.exception("task process for %s failed", workload.label)
            return 1

    def run(self, workload: Workload, *, store: Any = None) -> int:
        """:func:`execute_workload`, as an exit status for the executor: 0 when the try recorded its own end
        (or did not run because it is not this workload's to run), 1 when the DAG could not be loaded."""
        outcome = execute_workload(self, workload, store=store)
        if outcome.kind == WorkloadOutcome.NOT_CLAIMED:
            log.warning("%s", outcome.message)
        return outcome.executor_exit_code

    def _execute(self, workload: Workload, *, store: Any = None) -> WorkloadOutcome:
        """Run the workload here. ``store`` comes from a supervising worker's task process (which keeps its
        connection across workloads, and is heartbeated by the worker); without it this opens its own metastore
        and heartbeats itself."""
        from zonda.cli._loading import prepare_task_process
        from zonda.metastore.db import Metastore
        from zonda.plugins.manager import PluginManager
        from zonda.runner.dag_runner import InProcessDagRunner
        from zonda.runner.instance import TaskInstance
        from zonda.runner.store import DagRunInfo, MetastoreRunStore
        from zonda.runner.task_runner import TaskRunner

        settings = self._settings()
        supervised = store is not None
        metastore = None if supervised else Metastore.from_settings(settings)
        if store is None:
            store = MetastoreRunStore(metastore)
        # The load, the claim and the end state wait out a database restart instead of failing the try (or,
        # worse, leaving a finished try to be run again).
        store.outage_retry_timeout = float(settings.get("database", "task_end_state_retry_timeout"))
        try:
            if workload.ti_id >= 0:
                row = store.load_task_instance(workload.ti_id)
            else:  # from another machine: the instance is named by its key
                row = store.find_task_instance(workload.dag_id, workload.run_id, workload.task_id, workload.map_index)
                if row is not None:
                    workload = replace(workload, ti_id=row["id"], dag_run_id=row["dag_run_id"])
            refusal = _not_claimable(workload, row)
            if refusal is not None:
                return WorkloadOutcome(WorkloadOutcome.NOT_CLAIMED, row["state"] if row else None, refusal)
            from zonda import serde

            run = DagRunInfo(
                dag_id=row["dag_id"],
                run_id=row["run_id"],
                logical_date=row["run_logical_date"],
                data_interval_start=row["run_data_interval_start"],
                data_interval_end=row["run_data_interval_end"],
                run_type=row["run_run_type"],
                conf=serde.loads(row["run_conf"]) if row["run_conf"] else {},
                state=row["run_state"],
                start_date=row["run_start_date"],
                id=row["dag_run_id"],
            )
            # A resumed deferral continues its try; anything else is the try the scheduler numbered.
            held = int(row["try_number"] or 0)
            try_number = held if row.get("next_method") else workload.try_number
            try:
                dag = self.load_dag(workload)
                node = dag.get_task(workload.task_id)
            except ZondaException as exc:
                return self._fail_unloadable(store, run, workload, str(exc), try_number=try_number, held=held)
            plugins = self.plugins if self.plugins is not None else PluginManager.from_settings(settings)
            prepare_task_process(settings, plugins)
            params = dag.params.resolve(run.conf)
            runner = InProcessDagRunner(
                dag,
                store,
                settings=settings,
                log_folder=settings.log_folder,
                xcom_max_size=int(settings.get("xcom", "max_size")),
                plugins=plugins,
            )
            try:
                runner.task_log_handler()
            except ZondaException as exc:  # a misconfigured [logging] task_log_handler: say so in the try's log
                return self._fail_unloadable(store, run, workload, str(exc), try_number=try_number, held=held)
            ti = TaskInstance(node, run, store, map_index=row["map_index"], xcom_max_size=runner.xcom_max_size)
            ti.try_number = int(row["try_number"] or 0)
            ti.max_tries = int(row["max_tries"] or 0)
            ti.state = TaskInstanceState.QUEUED
            ti.queued_dttm = row["queued_dttm"]
            if row.get("next_method"):
                # Resuming from a deferral: same try (not incremented), the trigger's event in next_kwargs.
                ti.next_method = row["next_method"]
                ti.next_kwargs = serde.loads(row["next_kwargs"]) if row.get("next_kwargs") else {}
                ti.start_date = row["start_date"]
            operator: Any = node
            if node.is_mapped:
                from zonda.xcom_arg import resolve_references

                expansion = node.expansion(lambda v: resolve_references(v, {"ti": ti, "params": params}))
                operator = node.unmap(expansion[ti.map_index])
            env = runner.make_environment(params)
            env.claim = True
            env.log_server = current_log_server()
            if supervised:  # the supervising worker heartbeats for us
                TaskRunner(env).run_attempt(ti, operator)
            else:
                beat = _Heartbeat(
                    store, run, ti, float(settings.get("scheduler", "task_heartbeat_interval")), ti_id=workload.ti_id
                )
                beat.start()
                try:
                    TaskRunner(env).run_attempt(ti, operator)
                finally:
                    beat.stop()
            if ti.state is TaskInstanceState.NONE and not ti.owned:
                # Another process claimed it between our look and our claim (the compare-and-set lost).
                after = store.load_task_instance(workload.ti_id)
                refusal = _not_claimable(workload, after) or f"{workload.label}: already claimed by another process"
                return WorkloadOutcome(WorkloadOutcome.NOT_CLAIMED, after["state"] if after else None, refusal)
            return WorkloadOutcome(WorkloadOutcome.FINISHED, ti.state.value, f"{workload.label}: {ti.state.value}")
        finally:
            if not supervised:
                store.close()
                metastore.engine.dispose()

    def _fail_unloadable(
        self, store: Any, run: Any, workload: Workload, error: str, *, try_number: int, held: int
    ) -> WorkloadOutcome:
        """The DAG or task cannot be loaded: the try fails (and retries) with the reason in its log. ``held`` is
        the try number the queued row holds (the claim's compare-and-set)."""
        from zonda.runner.logs import attempt_log_path
        from zonda.timezone import utcnow

        settings = self._settings()
        path = attempt_log_path(
            settings.log_folder,
            workload.dag_id,
            workload.run_id,
            workload.task_id,
            workload.map_index,
            try_number,
        )
        from zonda.private_files import create_private_file

        now = utcnow()
        if store.claim_task_instance(
            run,
            workload.task_id,
            workload.map_index,
            {
                "state": TaskInstanceState.RUNNING.value,
                "try_number": try_number,
                "pid": os.getpid(),
                "start_date": now,
                "next_method": None,
                "next_kwargs": None,
                "trigger_id": None,
                "trigger_timeout": None,
            },
            try_number=held,
        ):
            # Claimed first, so a second delivery of the same workload writes nothing.
            create_private_file(path)  # owner-only, like every task log
            with path.open("a", encoding="utf-8") as handle:  # a resumed try appends to its log
                handle.write(f"cannot run {workload.label}: {error}\n")
            store.finish_owned_task_instance(
                run,
                workload.task_id,
                workload.map_index,
                {"state": TaskInstanceState.FAILED.value, "end_date": now, "duration": 0.0},
                pid=os.getpid(),
            )
            failed = TaskInstanceState.FAILED.value
            return WorkloadOutcome(WorkloadOutcome.UNLOADABLE, failed, f"cannot run {workload.label}: {error}")
        after = store.load_task_instance(workload.ti_id)
        refusal = _not_claimable(workload, after) or f"{workload.label}: already claimed by another process"
        return WorkloadOutcome(WorkloadOutcome.NOT_CLAIMED, after["state"] if after else None, refusal)


@dataclass(frozen=True)
class WorkloadOutcome:
    """What became of a workload: its try ran (``finished``, with the end state it recorded), it was not this
    process's to run (``not_claimed``: someone else claimed this try, or the instance is not queued for it), or
    its DAG or task could not be loaded (``unloadable``: the try is recorded as failed, the reason in its log)."""

    FINISHED = "finished"
    NOT_CLAIMED = "not_claimed"
    UNLOADABLE = "unloadable"

    kind: str
    state: str | None
    message: str

    @property
    def executor_exit_code(self) -> int:
        """The task process's exit status for an executor: nonzero only when the process itself could not do
        its job (a refused claim is not a failure: the owner of the try reports it)."""
        return 1 if self.kind == self.UNLOADABLE else 0


def execute_workload(runner: WorkloadRunner, workload: Workload, *, store: Any = None) -> WorkloadOutcome:
    """Run one try of one task instance in this process: the single entry point of every executor.

    The LocalExecutor's task processes call it with their kept metastore connection (``store``) while their
    worker heartbeats; ``zonda tasks execute`` (Celery, Kubernetes, any machine with the DAG files and the
    metastore URL) and ``zonda tasks run`` call it without, and it heartbeats itself. A workload with
    ``ti_id < 0`` names its instance by key only. The claim is a compare-and-set on ``queued`` and the try number
    the row holds, so a workload delivered twice, or late for an older try, runs at most once."""
    return runner._execute(workload, store=store)


def _not_claimable(workload: Workload, row: dict[str, Any] | None) -> str | None:
    """Why this workload must not run (one line), or None when its row is queued for exactly its try."""
    if row is None:
        return (
            f"not claimed: {workload.label} does not exist in the metastore (its run was deleted, or the "
            "workload names another metastore); nothing ran"
        )
    state, held = row["state"], int(row["try_number"] or 0)
    index = f"[{workload.map_index}]" if workload.map_index >= 0 else ""
    label = f"{workload.dag_id}.{workload.task_id}{index} ({workload.run_id})"
    expected = workload.try_number if row.get("next_method") else workload.try_number - 1
    if state == TaskInstanceState.QUEUED and held == expected:
        return None
    if held >= workload.try_number and state != TaskInstanceState.QUEUED:
        where = f" (pid {row['pid']} on {row['hostname']})" if row.get("pid") and row.get("hostname") else ""
        return f"already claimed: try {held} of {label} is {state}{where}; this delivery did not run it"
    if state == TaskInstanceState.QUEUED:
        return (
            f"not claimed: {label} is queued for try {held + (0 if row.get('next_method') else 1)}, "
            f"not try {workload.try_number} (a stale workload); nothing ran"
        )
    return (
        f"not claimed: {label} is {state or 'none'} (try {held}), not queued for try "
        f"{workload.try_number}; the scheduler queues it (or `zonda tasks run` runs it by hand); nothing ran"
    )


class _Heartbeat:
    """Refreshes the row's heartbeat; if the row is no longer ours, SIGTERMs this process (the task stops)."""

    def __init__(self, store: Any, run: Any, ti: Any, interval: float, *, ti_id: int) -> None:
        self.store, self.run, self.ti, self.ti_id = store, run, ti, ti_id
        self.interval = max(interval, 0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="zonda-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        from zonda.metastore.db import Metastore
        from zonda.runner.store import MetastoreRunStore

        # Its own connection: the task's may be mid-transaction.
        own = MetastoreRunStore(Metastore(self.store.metastore.url))
        failing = False
        try:
            while not self._stop.wait(self.interval):
                if self.ti.state != TaskInstanceState.RUNNING:
                    continue
                try:
                    alive = own.heartbeat_task_instance(self.run, self.ti.task_id, self.ti.map_index, pid=os.getpid())
                except Exception as exc:  # the database blipped or is restarting: try again next beat
                    if not failing:  # one line per outage, not one per beat
                        log.warning("heartbeat failed: %s; retrying each beat", exc)
                    failing = True
                    continue
                if failing:
                    log.warning("heartbeat works again")
                    failing = False
                if not alive and not self._stop.is_set() and not self._still_ours(own):
                    log.error("%s: task instance taken over by another process; stopping", self.ti.label)
                    self.ti.owned = False
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
        finally:
            own.close()
            own.metastore.engine.dispose()

    def _still_ours(self, own: Any) -> bool:
        """After a missed heartbeat: the row is still queued (the try is marked running here just before it is
        claimed), or this process claimed it or recorded its end since; a row that cannot be read now counts as
        ours too."""
        from zonda.executors.ownership import lost

        try:
            row = own.load_task_instance(self.ti_id)
        except Exception as exc:  # the database blipped: look again next beat
            log.warning("heartbeat check failed: %s", exc)
            return True
        return not lost(row, os.getpid())
