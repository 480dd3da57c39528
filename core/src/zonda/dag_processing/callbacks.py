"""Callbacks the scheduler cannot run itself: it asks, the DAG processor runs them in a child process.

The scheduler never imports user code, yet some user callbacks become due there: a DAG's
``on_success_callback`` / ``on_failure_callback`` when a run ends, and a task's ``on_failure_callback`` /
``on_retry_callback`` when the scheduler itself ends a try (the task process died or stopped heartbeating,
so nobody else will). The scheduler knows from the serialized DAG whether such a callback is set, and then
writes a ``callback_request`` row in the same transaction as the state change, so a scheduler that stops right
after loses nothing.

The DAG processor (which imports user code anyway, in children) claims one row at a time, runs it in a forked
child with the DAG file loaded, and deletes the row when the child is done. The child is bounded by
``core.dagbag_import_timeout`` plus :data:`CALLBACK_TIMEOUT` (60 s); a callback that raises is logged with its
traceback and not retried, as in a task process. Task callbacks write into the try's log file, DAG-run callbacks
into the processor's log. Plugins' ``on_task_instance_failed`` listeners are told of such a try from there too (the
scheduler asks whenever one is registered). A row claimed by a processor that died is claimed again once it is
older than twice the timeout.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from zonda.config import Settings
    from zonda.metastore.db import Metastore

log = logging.getLogger(__name__)

DAG_SUCCESS, DAG_FAILURE, TASK_FAILURE, TASK_RETRY = "dag_success", "dag_failure", "task_failure", "task_retry"
#: A run missed a deadline alert; ``map_index`` holds the alert's position in ``DAG(deadline=[...])``.
DAG_DEADLINE = "dag_deadline"

#: Which callback attribute each kind of request runs.
CALLBACK_OF = {
    DAG_SUCCESS: "on_success_callback",
    DAG_FAILURE: "on_failure_callback",
    TASK_FAILURE: "on_failure_callback",
    TASK_RETRY: "on_retry_callback",
    DAG_DEADLINE: "deadline",
}

#: Seconds a callback may run (on top of the import of its DAG file) before its child is killed.
CALLBACK_TIMEOUT = 60.0


def request_callback(
    conn: Any,
    *,
    kind: str,
    dag_id: str,
    fileloc: str | None,
    dag_run_id: int,
    task_id: str | None = None,
    map_index: int = -1,
    try_number: int | None = None,
    message: str | None = None,
) -> None:
    """Record that a callback is due (inside the caller's transaction)."""
    from sqlalchemy import insert

    from zonda.metastore import tables as t
    from zonda.timezone import utcnow

    if kind not in CALLBACK_OF:
        raise ValueError(f"unknown callback kind {kind!r}; one of {sorted(CALLBACK_OF)}")
    conn.execute(
        insert(t.callback_request).values(
            created_at=utcnow(),
            kind=kind,
            dag_id=dag_id,
            fileloc=fileloc,
            dag_run_id=dag_run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
            message=message,
        )
    )


@dataclass
class _Running:
    request: dict[str, Any]
    process: BaseProcess
    deadline: float


class CallbackRunner:
    """Lives in the DAG processor: :meth:`poll` (never blocking) reaps the running child, then claims and
    starts the next request. One callback runs at a time, so a slow one delays other callbacks, never parsing."""

    def __init__(
        self, settings: Settings, metastore: Metastore, *, timeout: float = CALLBACK_TIMEOUT, plugins: Any = None
    ) -> None:
        self.settings = settings
        self.metastore = metastore
        self.plugins = plugins
        self.timeout = float(settings.get("core", "dagbag_import_timeout")) + float(timeout)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._running: _Running | None = None
        self._ctx = multiprocessing.get_context("fork")
        self.completed = 0

    def poll(self) -> None:
        running = self._running
        if running is not None:
            if running.process.is_alive() and time.monotonic() < running.deadline:
                return
            self._finish(running)
            self._running = None
        request = self._claim()
        if request is None:
            return
        process = self._ctx.Process(
            target=_run_request,
            args=(self.settings, request, self.plugins),
            name=f"zonda-callback-{request['id']}",
            daemon=True,
        )
        process.start()
        self._running = _Running(request, process, time.monotonic() + self.timeout)

    def drain(self, timeout: float) -> None:
        """Run pending requests one after another until none is left or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if self._running is None:
                return
            self._running.process.join(min(0.05, max(deadline - time.monotonic(), 0.0)))

    def close(self) -> None:
        """Wait (bounded) for a running callback, then kill it."""
        running, self._running = self._running, None
        if running is None:
            return
        running.process.join(max(min(running.deadline - time.monotonic(), 5.0), 0.0))
        self._finish(running)

    def _finish(self, running: _Running) -> None:
        from sqlalchemy import delete

        from zonda.metastore import tables as t

        process, request = running.process, running.request
        if process.is_alive():
            log.error(
                "%s callback of %s took longer than %.0f s; stopped", request["kind"], _label(request), self.timeout
            )
            process.terminate()
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)
        elif process.exitcode:
            log.error("%s callback of %s ended with exit code %s", request["kind"], _label(request), process.exitcode)
        with self.metastore.engine.begin() as conn:
            conn.execute(delete(t.callback_request).where(t.callback_request.c.id == request["id"]))
        self.completed += 1

    def _claim(self) -> dict[str, Any] | None:
        from sqlalchemy import or_, select, update

        from zonda.metastore import tables as t
        from zonda.timezone import utcnow

        cr = t.callback_request
        now = utcnow()
        claimable = or_(cr.c.claimed_at.is_(None), cr.c.claimed_at < now - timedelta(seconds=2 * self.timeout))
        with self.metastore.engine.begin() as conn:
            for row in conn.execute(select(cr).where(claimable).order_by(cr.c.id).limit(5)).all():
                taken = conn.execute(
                    update(cr).where(cr.c.id == row.id, claimable).values(claimed_by=self.owner, claimed_at=now)
                )
                if taken.rowcount == 1:
                    return dict(row._mapping)
        return None


def _label(request: dict[str, Any]) -> str:
    task = f".{request['task_id']}" if request.get("task_id") else ""
    index = f"[{request['map_index']}]" if request.get("map_index", -1) >= 0 else ""
    return f"{request['dag_id']}{task}{index} (run {request['dag_run_id']})"


# --- the child ---------------------------------------------------------------------------------------------


def _run_request(settings: Settings, request: dict[str, Any], plugins: Any = None) -> None:
    """In a forked child: load the DAG file, build the context, run the callback. Exits non-zero when the
    callback could not be run at all (its own exceptions are logged, as in a task process)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from zonda.dagbag import DagBag
    from zonda.metastore.db import Metastore
    from zonda.runner.store import MetastoreRunStore

    # The DAGs and plugins folders on sys.path, as when the file was parsed (helper modules beside it import).
    bag = DagBag.from_settings(settings, plugins=plugins)
    fileloc = request.get("fileloc") or ""
    if fileloc and Path(fileloc).is_file():
        bag.process_file(Path(fileloc))
    dag = bag.dags.get(request["dag_id"])
    if dag is None:
        error = bag.import_errors.get(str(Path(fileloc).resolve())) if fileloc else None
        log.error(
            "cannot run the %s callback of %s: DAG %r is not in %s%s",
            request["kind"],
            _label(request),
            request["dag_id"],
            fileloc or "(no file recorded)",
            f": {error}" if error else "",
        )
        raise SystemExit(1)
    # A fresh engine: the processor's pooled connections belong to the processor.
    store = MetastoreRunStore(Metastore.from_settings(settings))
    run = _load_run(store, request["dag_run_id"])
    if run is None:
        log.warning("the run of %s is gone; its %s callback is dropped", _label(request), request["kind"])
        return
    if request["kind"] in (DAG_SUCCESS, DAG_FAILURE):
        _run_dag_callback(settings, dag, run, store, request)
        return
    if request["kind"] == DAG_DEADLINE:
        from zonda.dag_processing.deadline_callbacks import run_deadline_callback

        run_deadline_callback(settings, dag, run, store, request)
        return
    _run_task_callback(settings, dag, run, store, request, plugins)


def _run_dag_callback(settings: Settings, dag: Any, run: Any, store: Any, request: dict[str, Any]) -> None:
    """The DAG's success / failure callback with the context ``dags test`` gives it: the task context of the
    run's last (for a failure: last failed) task instance, plus ``reason``."""
    from zonda.runner.dag_runner import InProcessDagRunner, call_dag_callbacks, last_task_instance

    failed = request["kind"] == DAG_FAILURE
    params = dag.params.resolve(run.conf)
    env = InProcessDagRunner(dag, store, settings=settings, log_folder=settings.log_folder).make_environment(params)
    call_dag_callbacks(
        dag,
        run,
        failed=failed,
        reason=request.get("message"),
        last_ti=last_task_instance(_load_task_instances(dag, run, store), failed=failed),
        params=params,
        settings=settings,
        macros=env.macros,
    )
    with contextlib.suppress(Exception):
        store.close()


def _load_task_instances(dag: Any, run: Any, store: Any) -> list[Any]:
    """The run's task instances as the runner's objects, in the DAG's order; tasks no longer in the DAG are
    left out (their callbacks context could not name a task)."""
    from sqlalchemy import select

    from zonda.metastore import tables as t
    from zonda.runner.instance import TaskInstance
    from zonda.state import TaskInstanceState

    ti_t = t.task_instance
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                ti_t.c.task_id, ti_t.c.map_index, ti_t.c.state, ti_t.c.try_number, ti_t.c.start_date, ti_t.c.end_date
            )
            .where(ti_t.c.dag_run_id == run.id)
            .order_by(ti_t.c.map_index)
        ).all()
    position = {task.task_id: i for i, task in enumerate(dag.topological_order())}
    instances = []
    for row in sorted((r for r in rows if r.task_id in dag.task_dict), key=lambda r: position[r.task_id]):
        ti = TaskInstance(dag.task_dict[row.task_id], run, store, map_index=row.map_index)
        ti.try_number = row.try_number or 0
        ti.state = TaskInstanceState(row.state) if row.state else TaskInstanceState.NONE
        ti.end_date = row.end_date
        instances.append(ti)
    return instances


def _load_run(store: Any, dag_run_id: int) -> Any:
    from sqlalchemy import select

    from zonda.metastore import tables as t
    from zonda.runner.store import DagRunInfo

    with store.engine.connect() as conn:
        row = conn.execute(select(t.dag_run).where(t.dag_run.c.id == dag_run_id)).first()
    return DagRunInfo.from_row(row) if row is not None else None


def _run_task_callback(
    settings: Settings, dag: Any, run: Any, store: Any, request: dict[str, Any], plugins: Any = None
) -> None:
    """The task's callback (when set), then the plugins' ``on_task_instance_failed`` listeners, as the task
    process would have called both had it lived."""
    from zonda.context import build_context
    from zonda.exceptions import ZondaException
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.instance import TaskInstance
    from zonda.runner.logs import attempt_log_path, capture_attempt_log
    from zonda.runner.task_runner import run_callbacks
    from zonda.state import TaskInstanceState

    name = CALLBACK_OF[request["kind"]]
    task = dag.task_dict.get(request["task_id"])
    if task is None:
        log.warning("%s: the task is not in the DAG any more; its %s callback is dropped", _label(request), name)
        return
    partial = getattr(task, "partial_kwargs", None)  # a mapped operator keeps its settings there
    callback = partial.get(name) if partial is not None else getattr(task, name, None)
    map_index = int(request["map_index"])
    try_number = int(request.get("try_number") or 1)
    ti = TaskInstance(task, run, store, map_index=map_index)
    ti.try_number = try_number
    ti.state = TaskInstanceState.UP_FOR_RETRY if request["kind"] == TASK_RETRY else TaskInstanceState.FAILED
    ti.error = request.get("message")
    params = dag.params.resolve(run.conf)
    env = InProcessDagRunner(dag, store, settings=settings, log_folder=settings.log_folder).make_environment(params)
    context = build_context(dag=dag, task=task, dag_run=run, ti=ti, params=params, settings=settings, macros=env.macros)
    error = ZondaException(request.get("message") or "the scheduler ended this try")
    context["exception"] = error
    path = attempt_log_path(settings.log_folder, run.dag_id, run.run_id, task.task_id, map_index, try_number)
    with capture_attempt_log(path):
        task_log = logging.getLogger("zonda.task")
        task_log.error("The scheduler ended this try: %s", request.get("message") or "(no reason recorded)")
        if callback:
            task_log.info("Running %s (from the DAG processor, pid %s)", name, os.getpid())
            run_callbacks(callback, context, name)
        from zonda.email_alerts import send_task_alert

        send_task_alert(settings, ti, task, ti.state.value, error)
        if plugins is not None:
            plugins.call(
                "on_task_instance_failed",
                previous_state="running",
                task_instance=ti,
                error=error,
                will_retry=request["kind"] == TASK_RETRY,
            )
    with contextlib.suppress(Exception):
        store.close()
