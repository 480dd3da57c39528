"""Parsing one DAG file in a forked child process, and the parent's handle on that child.

The child is forked from the warm processor (Zonda and the operator modules already imported), so starting
one costs a few milliseconds, not an interpreter start-up. It imports the file with
:meth:`zonda.dagbag.DagBag.process_file` (policies from plugins apply), serializes every DAG it found and
sends the result back through a pipe as JSON, then exits. The parent never imports the user's module: it
only ever holds this JSON, which is what lets the scheduler and the web server stay free of user code.

Two clocks bound a parse. Inside the child, ``DagBag`` arms a SIGALRM deadline of ``core.dagbag_import_timeout``
that turns a slow import into an import error with the traceback of where it was stuck. The parent kills the
child (SIGTERM, then SIGKILL) a little later still, for code that ignores or blocks the alarm or hangs in C.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from zonda.dag_definition import DAG

TIMEOUT_SETTING = "core.dagbag_import_timeout"
MEMORY_SETTING = "core.dagbag_import_memory_limit"

#: Modules nearly every DAG file imports: loaded once in the parent so each forked child inherits them.
WARM_MODULES = (
    "zonda.dag_definition",
    "zonda.decorators",
    "zonda.operators",
    "zonda.sensors",
    "zonda.taskgroup",
    "zonda.params",
    "zonda.dagbag",
    "zonda.serialization",
    "zonda.serde",
    "zonda.runner.timeout",
)


def warm_up() -> None:
    """Import :data:`WARM_MODULES` (Zonda's own code, never the user's) so children start warm."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)


@dataclass
class ParsedDag:
    """What the parent writes for one DAG: the ``dag`` row's attributes and the serialized structure."""

    dag_id: str
    fileloc: str
    description: str | None
    schedule: str
    tags: list[str]
    owners: str
    max_active_runs: int | None
    max_active_tasks: int | None
    is_paused_upon_creation: bool | None
    data: str
    dag_hash: str
    task_count: int
    #: ``dag_display_name``; None shows the id.
    dag_display_name: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ParsedDag:
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})


@dataclass
class ParseResult:
    """The outcome of parsing one file: its DAGs, the import error (None when it imported cleanly)."""

    path: str
    dags: list[ParsedDag] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False
    seconds: float = 0.0
    pid: int | None = None

    @property
    def dag_ids(self) -> list[str]:
        return [d.dag_id for d in self.dags]


def duplicate_dag_id_error(dag_id: str, kept_in: str, refused_in: str) -> str:
    """The import error of the file whose definition of ``dag_id`` is refused because another file keeps it."""
    return (
        f"DuplicateDagId: DAG {dag_id!r} in {refused_in} is already defined in {kept_in}, which keeps it; "
        "give one of them another dag_id (dag ids must be unique across the DAGs folder)"
    )


def describe_dag(dag: DAG, fileloc: str) -> dict[str, Any]:
    """A DAG as JSON-safe data: ``serialize_dag`` plus the ``dag`` table's columns (child side)."""
    from zonda.serialization import serialize_dag

    data, digest = serialize_dag(dag)
    owners = ", ".join(sorted({str(getattr(t, "owner", None) or "zonda") for t in dag.tasks})) or "zonda"
    paused = dag.is_paused_upon_creation
    return {
        "dag_id": dag.dag_id,
        # The file that was processed, as Airflow does for module-level DAGs: a DAG built by a factory in a
        # helper module still belongs to (is deactivated with, is re-parsed from) the file that created it.
        "fileloc": fileloc,
        "description": dag.description,
        "schedule": dag.timetable.summary,
        "tags": [str(t) for t in (dag.tags or [])],
        "owners": owners,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "is_paused_upon_creation": None if paused is None else bool(paused),
        "data": data,
        "dag_hash": digest,
        "task_count": len(dag.task_dict),
        "dag_display_name": dag.dag_display_name,
    }


def parse_file(
    path: str,
    *,
    dags_folder: str | None,
    import_timeout: float,
    plugins: Any = None,
    plugins_folder: str | None = None,
) -> dict[str, Any]:
    """Import ``path`` and describe its DAGs (runs in the child; also callable in-process for tests)."""
    from zonda.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dags_folder, import_timeout=import_timeout, plugins=plugins, plugins_folder=plugins_folder)
    result = bag.process_file(Path(path))
    dags: list[dict[str, Any]] = []
    errors = [result.error] if result.error else []
    for dag_id in result.dag_ids:
        try:
            dags.append(describe_dag(bag.dags[dag_id], path))
        except Exception as exc:  # a DAG that cannot be serialized must not hide the file's other DAGs
            errors.append(f"DAG {dag_id!r} could not be serialized: {type(exc).__name__}: {exc}")
    return {
        "path": path,
        "dags": dags,
        "error": "\n".join(errors) or None,
        # DagBag's own alarm fired: the import was interrupted where it was stuck (the traceback says where).
        "timed_out": bool(result.error and "ZondaTaskTimeout" in result.error),
        "seconds": time.perf_counter() - started,
        "pid": os.getpid(),
    }


def limit_memory(megabytes: int) -> None:
    """Let this process's address space grow by at most ``megabytes`` MiB from its current size, so a DAG file
    that allocates without bound gets a MemoryError (an import error) instead of the machine's memory."""
    if megabytes <= 0:
        return
    import resource

    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        current = 0
    limit = current + megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _memory_hint(error: str | None, megabytes: int) -> str | None:
    if error is None or megabytes <= 0 or not error.rstrip().endswith("MemoryError"):
        return error
    return (
        f"{error}\nImporting this file needed more than {MEMORY_SETTING} ({megabytes} MiB) of memory: load big "
        f"data inside tasks, not at module level, or raise {MEMORY_SETTING} (0 removes the limit)"
    )


def _child_main(
    conn: Connection,
    path: str,
    dags_folder: str | None,
    import_timeout: float,
    plugins: Any,
    memory_mb: int,
    plugins_folder: str | None,
) -> None:
    _become_parse_child()
    payload = _parse_answer(path, dags_folder, import_timeout, plugins, memory_mb, plugins_folder)
    conn.send_bytes(json.dumps(payload).encode())
    conn.close()
    _exit_parse_child()


def _become_parse_child() -> None:
    """Signals and streams of a parse child, whatever its parent had."""
    # The parent may have installed handlers (the scheduler's graceful SIGTERM) that must not run here: the
    # parent ends a child with SIGTERM and expects it to die; Ctrl-C in a terminal is the parent's to handle.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What a DAG file prints at import goes to stderr: stdout belongs to the parent (``dags list --output json``).
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        os.dup2(2, 1)
        sys.stdout = sys.stderr


def _parse_answer(
    path: str,
    dags_folder: str | None,
    import_timeout: float,
    plugins: Any,
    memory_mb: int,
    plugins_folder: str | None,
) -> dict[str, Any]:
    """What a child sends back for one file; any failure of the parse itself becomes that file's error."""
    try:
        limit_memory(memory_mb)  # per file: in a batch child, what earlier files loaded is not this file's growth
        payload = parse_file(
            path, dags_folder=dags_folder, import_timeout=import_timeout, plugins=plugins, plugins_folder=plugins_folder
        )
        payload["error"] = _memory_hint(payload["error"], memory_mb)
    except BaseException as exc:  # never leave the parent without an answer it can record
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        payload = {"path": path, "dags": [], "error": text, "seconds": 0.0, "pid": os.getpid()}
    return payload


def _exit_parse_child() -> None:
    # Skip interpreter shutdown: threads or atexit handlers the DAG file started must not keep this child
    # alive (multiprocessing would join non-daemon threads) or run in it after its answer is sent.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


class ParseJob:
    """One child parsing one file, as the parent sees it."""

    def __init__(
        self,
        path: str,
        *,
        dags_folder: str | None,
        import_timeout: float,
        plugins: Any = None,
        context: Any = None,
        memory_mb: int = 0,
        plugins_folder: str | None = None,
    ) -> None:
        self.path = path
        self.import_timeout = import_timeout
        ctx = context or multiprocessing.get_context("fork")
        reader, writer = ctx.Pipe(duplex=False)
        self.conn: Connection = reader
        self.process: BaseProcess = ctx.Process(
            target=_child_main,
            args=(writer, path, dags_folder, import_timeout, plugins, memory_mb, plugins_folder),
            name=f"zonda-dag-parser:{Path(path).name}",
            daemon=True,
        )
        self.started = time.monotonic()
        self.process.start()
        self.pid = self.process.pid
        writer.close()  # the child holds the only write end, so its death reads as EOF here
        # The child's own alarm fires at the timeout and reports where the file was stuck; this later kill is
        # for a child that cannot be interrupted (alarm ignored, blocked in C).
        self.kill_at = self.started + import_timeout + kill_grace(import_timeout)

    @property
    def waitables(self) -> list[Any]:
        return [self.conn, self.process.sentinel]

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.monotonic()) - self.started

    def ready(self) -> bool:
        return self.conn.poll() or not self.process.is_alive()

    def collect(self) -> ParseResult:
        """The child's answer (call once :meth:`ready`); a child that died without one becomes an error."""
        raw: dict[str, Any] | None = None
        try:
            if self.conn.poll():
                raw = json.loads(self.conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            raw = None
        self.process.join(timeout=1)
        if self.process.is_alive():  # answered but did not exit (or never answered): do not leave it behind
            stop_process(self.process)
        code = self.process.exitcode
        seconds = self.age()
        self._close()
        if raw is None:
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            return ParseResult(
                path=self.path,
                error=f"the process parsing {self.path} {how} before reporting its DAGs",
                seconds=seconds,
                pid=self.pid,
            )
        return ParseResult(
            path=self.path,
            dags=[ParsedDag.from_json(d) for d in raw["dags"]],
            error=raw["error"],
            timed_out=bool(raw.get("timed_out")),
            seconds=seconds,
            pid=raw.get("pid"),
        )

    def kill(self, *, timed_out: bool) -> ParseResult:
        """Stop the child: SIGTERM, then SIGKILL if it is still alive shortly after."""
        stop_process(self.process)
        seconds = self.age()
        self._close()
        error = None
        if timed_out:
            error = (
                f"DAG file {self.path} timed out: importing it took longer than {TIMEOUT_SETTING} "
                f"({self.import_timeout:g} s) and the parsing process was killed after {seconds:.1f} s; move slow "
                f"work (API calls, queries, loops) out of module level into tasks, or raise {TIMEOUT_SETTING} "
                "(ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT)"
            )
        return ParseResult(path=self.path, error=error, timed_out=timed_out, seconds=seconds, pid=self.pid)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError):  # still running: kill() handles that case
            self.process.close()


def kill_grace(import_timeout: float) -> float:
    """Extra time the parent allows past the timeout before killing (the child's alarm should win)."""
    return max(0.5, min(5.0, 0.1 * import_timeout))


def stop_process(process: BaseProcess, grace: float = 0.5) -> None:
    if process.is_alive():
        process.terminate()
        process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(5)


def _batch_child_main(
    conn: Connection,
    paths: list[str],
    dags_folder: str | None,
    import_timeout: float,
    plugins: Any,
    memory_mb: int,
    plugins_folder: str | None,
) -> None:
    """Parse ``paths`` one after the other, announcing each file before importing it, so the parent knows which
    file to blame (and how long it has run) if this process dies or hangs."""
    _become_parse_child()
    for path in paths:
        conn.send_bytes(json.dumps({"start": path}).encode())
        payload = _parse_answer(path, dags_folder, import_timeout, plugins, memory_mb, plugins_folder)
        conn.send_bytes(json.dumps(payload).encode())
    conn.close()
    _exit_parse_child()


class BatchParseJob:
    """One child parsing several files in turn, as the parent sees it: a file that kills or hangs the child
    is that file's import error, and :meth:`remaining` names the files a new child must still parse.

    The files share the child's imported modules (a DAG file's ``import pandas`` is paid once per child, not
    once per file), which is what keeps ``zonda dags list`` about as fast as importing them in-process.
    """

    def __init__(
        self,
        paths: list[str],
        *,
        dags_folder: str | None,
        import_timeout: float,
        plugins: Any,
        memory_mb: int,
        plugins_folder: str | None = None,
    ) -> None:
        self.paths = list(paths)
        self.import_timeout = import_timeout
        self.results: dict[str, ParseResult] = {}
        self.current: str | None = None
        self.current_since = time.monotonic()
        ctx = multiprocessing.get_context("fork")
        reader, writer = ctx.Pipe(duplex=False)
        self.conn: Connection = reader
        self.process: BaseProcess = ctx.Process(
            target=_batch_child_main,
            args=(writer, self.paths, dags_folder, import_timeout, plugins, memory_mb, plugins_folder),
            name="zonda-dag-parser:batch",
            daemon=True,
        )
        self.process.start()
        writer.close()
        self.done = False

    @property
    def waitables(self) -> list[Any]:
        return [self.conn, self.process.sentinel]

    @property
    def kill_at(self) -> float:
        return self.current_since + self.import_timeout + kill_grace(self.import_timeout)

    def remaining(self) -> list[str]:
        return [p for p in self.paths if p not in self.results]

    def step(self, now: float) -> None:
        """Read what the child sent; record the current file's error if the child died or overran."""
        try:
            while not self.done and self.conn.poll():
                message = json.loads(self.conn.recv_bytes())
                if "start" in message:
                    self.current, self.current_since = message["start"], time.monotonic()
                    continue
                self.results[message["path"]] = ParseResult(
                    path=message["path"],
                    dags=[ParsedDag.from_json(d) for d in message["dags"]],
                    error=message["error"],
                    timed_out=bool(message.get("timed_out")),
                    seconds=message.get("seconds", 0.0),
                    pid=message.get("pid"),
                )
                self.current = None
        except (EOFError, OSError, ValueError):
            self._end(killed=False)
            return
        if not self.remaining():
            self._end(killed=False)
        elif self.current is not None and now >= self.kill_at:
            self._end(killed=True)
        elif not self.process.is_alive() and not self.conn.poll():
            self._end(killed=False)

    def _end(self, *, killed: bool) -> None:
        if self.done:
            return
        self.done = True
        if killed:
            stop_process(self.process)
        else:
            self.process.join(timeout=1)
            if self.process.is_alive():
                stop_process(self.process)
        code = self.process.exitcode
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError):
            self.process.close()
        path = self.current
        if path is None or path in self.results:
            return
        seconds = time.monotonic() - self.current_since
        if killed:
            error = (
                f"DAG file {path} timed out: importing it took longer than {TIMEOUT_SETTING} "
                f"({self.import_timeout:g} s) and the parsing process was killed after {seconds:.1f} s; move slow "
                f"work (API calls, queries, loops) out of module level into tasks, or raise {TIMEOUT_SETTING} "
                "(ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT)"
            )
        else:
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            error = f"the process parsing {path} {how} before reporting its DAGs"
        self.results[path] = ParseResult(path=path, error=error, timed_out=killed, seconds=seconds)

    def kill(self) -> None:
        self._end(killed=True)


def parse_in_children(
    paths: list[str],
    *,
    dags_folder: str | None,
    import_timeout: float,
    plugins: Any = None,
    memory_mb: int = 0,
    max_children: int | None = None,
    plugins_folder: str | None = None,
) -> list[ParseResult]:
    """Parse ``paths`` in child processes, isolated from this one as the DAG processor isolates its parses (same
    :func:`parse_file`, timeout, memory limit); the results come back in the order of ``paths``.

    For commands that parse the DAGs folder without a DAG processor (``zonda dags list`` and friends): a file
    that exits, ignores the alarm, sleeps or eats memory becomes that file's import error, and a fresh child
    parses the files after it. At most ``max_children`` children (the CPU count) run at once, each with its share
    of the files.
    """
    from multiprocessing.connection import wait as wait_for

    warm_up()
    if plugins is not None:
        # Discover (and, when there are policies, load) the plugins once here: every child inherits the result
        # instead of scanning the installed distributions again.
        for hook in ("dag_policy", "task_policy"):
            plugins.has_implementations(hook)
    count = max(1, min(len(paths), max_children or os.cpu_count() or 2))
    options = {
        "dags_folder": dags_folder,
        "import_timeout": import_timeout,
        "plugins": plugins,
        "memory_mb": memory_mb,
        "plugins_folder": plugins_folder,
    }
    jobs = [BatchParseJob(paths[i::count], **options) for i in range(count) if paths[i::count]]
    results: dict[str, ParseResult] = {}
    try:
        while jobs:
            now = time.monotonic()
            for job in list(jobs):
                job.step(now)
                if job.done:
                    jobs.remove(job)
                    results.update(job.results)
                    rest = job.remaining()
                    if rest:  # the child died on (or overran) one file: a fresh child takes the others
                        jobs.append(BatchParseJob(rest, **options))
            if jobs:
                wake = min(job.kill_at for job in jobs) - time.monotonic()
                wait_for([w for job in jobs for w in job.waitables], timeout=max(0.001, min(wake, 1.0)))
    finally:
        for job in jobs:  # interrupted (Ctrl-C): leave no child behind
            job.kill()
    return [results[path] for path in paths]
