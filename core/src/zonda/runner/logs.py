"""Task attempt logs: one file per attempt, ``dag_id=…/run_id=…/task_id=…/[map_index=…/]attempt=N.log``.

While an attempt runs, everything it logs (``self.log``, any ``logging`` logger) and everything it prints goes
to that file. The handler is attached to the root logger only for the attempt's duration. This is the
machinery of the built-in ``file`` task-log handler; :mod:`zonda.runner.log_handlers` is the interface the task
runner and ``zonda tasks logs`` go through.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

FORMAT = "[%(asctime)s] {%(levelname)s} %(name)s: %(message)s"

#: Threads whose logging is being captured into an attempt's log, with how many captures each has open.
_capturing: dict[int, int] = {}


def is_captured(record: logging.LogRecord) -> bool:
    """Whether ``record`` was logged by a thread while it runs an attempt: it belongs in that attempt's log,
    not on a service's console (a task process inherits its scheduler's console handler)."""
    return record.thread in _capturing


def attempt_log_path(base: Path, dag_id: str, run_id: str, task_id: str, map_index: int, attempt: int) -> Path:
    folder = base / f"dag_id={dag_id}" / f"run_id={_safe(run_id)}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    return folder / f"attempt={attempt}.log"


def _safe(part: str) -> str:
    """``part`` as one path segment, one-to-one: characters outside run ids' rule (:mod:`zonda.identifiers`),
    and ``%`` itself, are percent-encoded, so ``a/b`` and ``a_b`` can never share a file (runs stored before
    the rule existed may still hold such characters)."""
    return quote(part, safe="_.:+~-")


def utc_timestamp(record: logging.LogRecord) -> str:
    """A record's time as the log file writes it: ISO 8601 in UTC with milliseconds (``...T10:00:00.123Z``),
    which Elasticsearch's ``date`` type also reads as is."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def format_line(timestamp: str, level: str, logger: str, message: str) -> str:
    """One record as :data:`FORMAT` writes it, from its parts: a handler that stores records as fields
    (Elasticsearch) prints them back exactly as the file would have."""
    return f"[{timestamp}] {{{level}}} {logger}: {message}"


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record)


class _LineWriter(io.TextIOBase):
    """A file-like object turning ``print`` output into log records, line by line."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._level = level
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._logger.log(self._level, "%s", line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._logger.log(self._level, "%s", self._buffer)
            self._buffer = ""


@contextlib.contextmanager
def capture_attempt_log(
    path: Path,
    *,
    echo: bool = False,
    extra_handlers: Sequence[logging.Handler] = (),
    filters: Sequence[logging.Filter] = (),
) -> Iterator[Path]:
    """Route logging and stdout/stderr of the code inside to ``path`` (and to the console when ``echo``).

    ``extra_handlers`` receive the same records after the file has them (already redacted), and are removed
    only after the last partial ``print`` line is flushed, so a task-log handler that ships lines elsewhere
    sees exactly the file's records. ``filters`` are added to the file and console handlers too (a shipper
    keeps its own client's request logging out of the task's log this way).
    """
    from zonda.masking import RedactingFilter
    from zonda.private_files import create_private_file

    create_private_file(path)  # owner-only whatever the umask: tasks print what they see
    handler = logging.FileHandler(path, encoding="utf-8", delay=False)
    formatter = _UtcFormatter(FORMAT)
    handler.setFormatter(formatter)
    redacting = RedactingFilter()  # connection passwords and registered secrets never reach a log file
    handler.addFilter(redacting)
    for extra_filter in filters:
        handler.addFilter(extra_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    echo_handler = None
    if echo:
        echo_handler = logging.StreamHandler(sys.__stdout__)
        echo_handler.setFormatter(formatter)
        echo_handler.addFilter(redacting)
        for extra_filter in filters:
            echo_handler.addFilter(extra_filter)
        root.addHandler(echo_handler)
    for extra_handler in extra_handlers:
        root.addHandler(extra_handler)
    previous_level = root.level
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    stdout = _LineWriter(logging.getLogger("zonda.task.stdout"), logging.INFO)
    stderr = _LineWriter(logging.getLogger("zonda.task.stderr"), logging.WARNING)
    thread = threading.get_ident()
    _capturing[thread] = _capturing.get(thread, 0) + 1
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):  # type: ignore[type-var]
            yield path
    finally:
        stdout.flush()
        stderr.flush()
        if _capturing[thread] <= 1:
            del _capturing[thread]
        else:
            _capturing[thread] -= 1
        root.removeHandler(handler)
        handler.close()
        if echo_handler is not None:
            root.removeHandler(echo_handler)
        for extra_handler in extra_handlers:
            root.removeHandler(extra_handler)
        root.setLevel(previous_level)
