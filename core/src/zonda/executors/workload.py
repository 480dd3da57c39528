"""Running one workload in a task process: claim the queued row, run the try, heartbeat while it runs.

Used by the LocalExecutor's forked children and by ``zonda tasks run``. Ownership is explicit: the process
claims ``queued -> running`` with a conditional update (so a try never runs twice), writes its end state only
while the row still names its pid, and a heartbeat thread that finds the row taken away (the scheduler declared
the process dead, or someone cleared the task) stops the task without recording success.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException, ZondaTaskTerminated

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.executors.base import Workload

log = logging.getLogger("zonda.executors.workload")


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
        bag = DagBag(None, import_timeout=float(settings.get("core", "dagbag_import_timeout")))
        bag.process_file(path)
        self._dags[fileloc] = (mtime, bag)
        return bag

    def load_dag(self, workload: Workload) -> DAG:
        bag = self._bag(workload.fileloc)
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
        from zonda.state import TaskInstanceState

        settings = self._settings()
        supervised = store is not None
        metastore = None if supervised else Metastore.from_settings(settings)
        if store is None:
            store = MetastoreRunStore(metastore)
        try:
            row = store.load_task_instance(workload.ti_id)
            if row is None or row["state"] != "queued":
                log.warning("%s is not queued any more (%s); nothing to do", workload.label, row and row["state"])
                return 0
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
            try_number = int(row["try_number"] or 0) if row.get("next_method") else workload.try_number
            try:
                dag = self.load_dag(workload)
                node = dag.get_task(workload.task_id)
            except ZondaException as exc:
                self._fail_unloadable(store, run, workload, str(exc), try_number=try_number)
                return 1
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
                self._fail_unloadable(store, run, workload, str(exc), try_number=try_number)
                return 1
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
            if supervised:  # the supervising worker heartbeats for us
                TaskRunner(env).run_attempt(ti, operator)
                return 0
            beat = _Heartbeat(
                store, run, ti, float(settings.get("scheduler", "task_heartbeat_interval")), ti_id=workload.ti_id
            )
            beat.start()
            try:
                TaskRunner(env).run_attempt(ti, operator)
            finally:
                beat.stop()
            return 0
        finally:
            if not supervised:
                store.close()
                metastore.engine.dispose()

    def _fail_unloadable(
        self, store: Any, run: Any, workload: Workload, error: str, *, try_number: int | None = None
    ) -> None:
        """The DAG or task cannot be loaded: the try fails (and retries) with the reason in its log."""
        from zonda.runner.logs import attempt_log_path
        from zonda.timezone import utcnow

        settings = self._settings()
        try_number = workload.try_number if try_number is None else try_number
        path = attempt_log_path(
            settings.log_folder,
            workload.dag_id,
            workload.run_id,
            workload.task_id,
            workload.map_index,
            try_number,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:  # a resumed try appends to its log
            handle.write(f"cannot run {workload.label}: {error}\n")
        now = utcnow()
        if store.claim_task_instance(
            run,
            workload.task_id,
            workload.map_index,
            {
                "state": "running",
                "try_number": try_number,
                "pid": os.getpid(),
                "start_date": now,
                "next_method": None,
                "next_kwargs": None,
                "trigger_id": None,
                "trigger_timeout": None,
            },
        ):
            store.finish_owned_task_instance(
                run,
                workload.task_id,
                workload.map_index,
                {"state": "failed", "end_date": now, "duration": 0.0},
                pid=os.getpid(),
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
        try:
            while not self._stop.wait(self.interval):
                if self.ti.state.value != "running":
                    continue
                try:
                    alive = own.heartbeat_task_instance(self.run, self.ti.task_id, self.ti.map_index, pid=os.getpid())
                except Exception as exc:  # the database blipped: try again next beat
                    log.warning("heartbeat failed: %s", exc)
                    continue
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
        from zonda.executors.ownership import Holder, holder

        try:
            row = own.load_task_instance(self.ti_id)
        except Exception as exc:  # the database blipped: look again next beat
            log.warning("heartbeat check failed: %s", exc)
            return True
        return holder(row, os.getpid()) in (Holder.UNCLAIMED, Holder.THIS_PROCESS)
