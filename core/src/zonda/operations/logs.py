"""Task logs: find a try of a task instance and read its log through the configured task-log handler.

Called by ``zonda tasks logs``, the REST API and the web server's log view. Finding the try reads the metastore
only; reading goes through whatever handler ``[logging] task_log_handler`` names (local files, or a remote store
a provider adds), so the caller builds the handler once, with its plugins, and passes it in. When the handler has
no lines and the try ran on a remote worker, the log is fetched from that worker's log server, whose address was
recorded with the try (:mod:`zonda.worker_logs`): one code path for every reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from zonda.exceptions import NotFound, OperationError
from zonda.metastore import tables as t
from zonda.operations.dag_runs import find_run

if TYPE_CHECKING:
    from zonda.runner.log_handlers import TaskLog, TaskLogHandler, TaskLogKey


@dataclass(frozen=True)
class LogTry:
    """One try of one task instance whose log can be read."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    #: How many tries the instance has had so far.
    tries: int
    state: str | None
    #: The log server of the worker that ran this try (``http://host:port``), or None.
    log_server: str | None = None

    @property
    def label(self) -> str:
        return f"{self.dag_id}.{self.task_id}" + (f"[{self.map_index}]" if self.map_index >= 0 else "")

    @property
    def key(self) -> TaskLogKey:
        from zonda.runner.log_handlers import TaskLogKey

        return TaskLogKey(self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number)


def locate_try(
    engine: Any, dag_id: str, task_id: str, run_id: str, *, map_index: int = -1, try_number: int | None = None
) -> LogTry:
    """The try to read (default: the latest); NotFound for an unknown run, task or map index, OperationError for
    an instance that has not started or a try number out of range."""
    ti = t.task_instance
    with engine.connect() as conn:
        run = find_run(conn, dag_id, run_id)
        instances = conn.execute(
            select(ti.c.id, ti.c.task_id, ti.c.map_index, ti.c.state, ti.c.try_number, ti.c.log_server).where(
                ti.c.dag_run_id == run.id
            )
        ).all()
    label = f"{dag_id}.{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
    of_task = [r for r in instances if r.task_id == task_id]
    if not of_task:
        from zonda.suggestions import unknown_name

        task_ids = sorted({r.task_id for r in instances})
        raise NotFound(
            unknown_name(
                f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}",
                task_id,
                task_ids,
                f"its tasks: {', '.join(task_ids) or 'none yet'}",
            )
        )
    row = next((r for r in of_task if r.map_index == map_index), None)
    if row is None:
        indexes = ", ".join(str(r.map_index) for r in sorted(of_task, key=lambda r: r.map_index))
        raise NotFound(f"run {run_id!r} has no instance {label}; its map indexes are {indexes}: pass --map-index")
    tries = int(row.try_number or 0)
    if tries < 1:
        raise OperationError(f"{label} has not started in run {run_id!r} (state {row.state or 'none'}): no log yet")
    chosen = tries if try_number is None else try_number
    if not 1 <= chosen <= tries:
        raise OperationError(
            f"{label} has had {tries} tr{'y' if tries == 1 else 'ies'} in run {run_id!r}; --try must be 1 to {tries}"
        )
    log_server = row.log_server if chosen == tries else _earlier_log_server(engine, row.id, chosen)
    return LogTry(dag_id, task_id, run_id, map_index, chosen, tries, row.state, log_server)


def _earlier_log_server(engine: Any, ti_id: int, try_number: int) -> str | None:
    """The log server recorded for an earlier try (its last phase in the history), or None."""
    history = t.task_instance_history
    with engine.connect() as conn:
        return conn.execute(
            select(history.c.log_server)
            .where(history.c.task_instance_id == ti_id, history.c.try_number == try_number)
            .order_by(history.c.id.desc())
            .limit(1)
        ).scalar()


def read_log(handler: TaskLogHandler, log_try: LogTry) -> TaskLog:
    """The try's log lines, in order, and where they came from: through the handler, else from the log server of
    the worker that ran the try (:class:`~zonda.exceptions.TaskLogNotFound` when neither has them)."""
    from zonda.exceptions import TaskLogNotFound

    try:
        return handler.read(log_try.key)
    except TaskLogNotFound as local_miss:
        if not log_try.log_server or handler.settings is None:
            raise
        from zonda.worker_logs.client import fetch_log

        try:
            return fetch_log(handler.settings, log_try.log_server, log_try.key)
        except TaskLogNotFound as remote_miss:
            raise TaskLogNotFound(f"{local_miss}; {remote_miss}") from None


#: States in which a try may still write to its log (queued: a resumed try's next phase is on its way).
_LIVE_STATES = ("queued", "running", "deferred", "up_for_reschedule", "scheduled")


def try_is_live(engine: Any, log_try: LogTry) -> bool:
    """Whether the try may still write lines: the instance still holds it and is under way (one statement)."""
    ti = t.task_instance
    with engine.connect() as conn:
        row = conn.execute(
            select(ti.c.state, ti.c.try_number)
            .join(t.dag_run, t.dag_run.c.id == ti.c.dag_run_id)
            .where(
                t.dag_run.c.dag_id == log_try.dag_id,
                t.dag_run.c.run_id == log_try.run_id,
                ti.c.task_id == log_try.task_id,
                ti.c.map_index == log_try.map_index,
            )
        ).first()
    return row is not None and int(row.try_number or 0) == log_try.try_number and row.state in _LIVE_STATES
