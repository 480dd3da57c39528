"""The name a try's log has on every machine: its path relative to the log folder, as the server checks it."""

from __future__ import annotations

from pathlib import Path

from zonda.runner.log_handlers import TaskLogKey


class BadLogPath(Exception):
    """A requested path that is not a task log inside the log folder (absolute, ``..``, not ``.log``)."""


def relative_log_path(key: TaskLogKey) -> str:
    """``dag_id=.../run_id=.../task_id=.../attempt=N.log``: the same on the worker and the reader."""
    from zonda.runner.logs import attempt_log_path

    relative = attempt_log_path(Path(), key.dag_id, key.run_id, key.task_id, key.map_index, key.try_number)
    return relative.as_posix()


def resolve_in_folder(folder: Path, requested: str) -> Path:
    """The file ``requested`` names inside ``folder``; :class:`BadLogPath` for anything that could leave it."""
    if not requested or "\\" in requested or "\x00" in requested:
        raise BadLogPath("empty path or a forbidden character")
    if requested.startswith("/") or any(part in ("", ".", "..") for part in requested.split("/")):
        raise BadLogPath("the path must be relative, without '.' or '..' segments")
    if not requested.endswith(".log"):
        raise BadLogPath("only task log files (*.log) are served")
    root = folder.resolve()
    target = (root / requested).resolve()
    if not target.is_relative_to(root):
        raise BadLogPath("the path leaves the log folder")
    return target
