"""The DAG processor: keeps the metastore's ``dag``, ``serialized_dag`` and ``import_error`` tables in step with
the DAGs folder, so the scheduler and the web server never import user code.

Two clocks, as the issue asks:

* every ``poll_interval`` (0.5 s) it lists the folder and ``stat``\\ s each candidate file, comparing
  ``(mtime_ns, size, inode)`` with the previous poll: a new, changed or deleted file is handled within about a
  second, without Airflow's five-minute wait. A poll reads no file contents (the "mentions dag and zonda"
  safe-mode check runs only for files that changed);
* every ``scheduler.dag_dir_list_interval`` (300 s) it re-parses everything, and once that full pass is done
  deactivates DAGs whose file is not there any more (deleted while no processor ran) and drops stale errors.

Each changed file is parsed in a forked child (:mod:`zonda.dag_processing.parsing`) with the
``core.dagbag_import_timeout``; at most ``max_children`` (2) children parse at once, and a child still running
after ``slow_after`` seconds stops counting against that bound (up to a hard cap), so a file that loops at
import never delays the others. The parent writes every result itself (:mod:`zonda.dag_processing.writer`)
as soon as its child answers.

Not thread-safe: one thread calls :meth:`DagProcessor.run` (or :meth:`~DagProcessor.run_once`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.dag_processing.parsing import ParseJob, ParseResult, duplicate_dag_id_error, warm_up
from zonda.dag_processing.writer import DagWriter, WriteOutcome

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_processing.callbacks import CallbackRunner
    from zonda.metastore.db import Metastore

log = logging.getLogger(__name__)

StatKey = tuple[int, int, int]


@dataclass
class ProcessorReport:
    """What one pass did. ``parsed`` holds each file's result (DAG ids, error, seconds, child pid)."""

    full: bool = False
    files_listed: int = 0
    parsed: list[ParseResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    writes: WriteOutcome = field(default_factory=WriteOutcome)
    list_seconds: float = 0.0
    write_seconds: float = 0.0
    duration_seconds: float = 0.0

    @property
    def files_parsed(self) -> int:
        return len(self.parsed)

    @property
    def dags_written(self) -> list[str]:
        """DAGs whose serialized structure was (re)written: new, or changed hash."""
        return self.writes.serialized

    @property
    def errors(self) -> dict[str, str]:
        return {r.path: r.error for r in self.parsed if r.error is not None}

    @property
    def timed_out(self) -> list[str]:
        return [r.path for r in self.parsed if r.timed_out]

    @property
    def changed(self) -> bool:
        w = self.writes
        return bool(self.removed or w.created or w.serialized or w.deactivated or w.reactivated or self.errors)

    def summary(self) -> str:
        w = self.writes
        parts = [f"parsed {self.files_parsed} of {self.files_listed} files" + (" (full pass)" if self.full else "")]
        for label, items in (
            ("new", w.created),
            ("written", w.serialized),
            ("unchanged", w.unchanged),
            ("deactivated", w.deactivated),
            ("reactivated", w.reactivated),
        ):
            if items:
                parts.append(f"{len(items)} DAG(s) {label}")
        if self.removed:
            parts.append(f"{len(self.removed)} file(s) gone")
        if self.errors:
            parts.append(f"{len(self.errors)} import error(s)")
        if self.timed_out:
            parts.append(f"{len(self.timed_out)} timed out")
        return f"{', '.join(parts)} in {self.duration_seconds:.3f} s (list {self.list_seconds * 1000:.1f} ms)"


@dataclass
class _FileState:
    stat: StatKey
    safe_mode: bool  # files of the DAGs folder must mention "dag" and "zonda"; the examples need not
    problem: str | None = None  # not a regular file (FIFO, device, link loop): this is its import error
    is_dag_file: bool | None = None  # None: not checked yet
    dag_ids: set[str] = field(default_factory=set)


class DagProcessor:
    """Parses changed DAG files in child processes and writes the results to the metastore.

    ``run_once()`` does one pass and waits for its parses; ``run(stop)`` polls until ``stop`` is set, writing
    each result as soon as its child answers. The first pass (and one every ``list_interval`` seconds) is full.
    """

    def __init__(
        self,
        settings: Settings,
        metastore: Metastore,
        *,
        plugins: Any = None,
        poll_interval: float = 0.5,
        list_interval: float | None = None,
        max_children: int = 2,
        slow_after: float = 1.0,
    ) -> None:
        from zonda.dagbag import example_folders

        self.settings = settings
        self.plugins = plugins
        self.poll_interval = float(poll_interval)
        if list_interval is None:
            list_interval = float(settings.get("scheduler", "dag_dir_list_interval"))
        self.list_interval = float(list_interval)
        self.max_children = max(1, int(max_children))
        self.slow_after = float(slow_after)
        self.import_timeout = float(settings.get("core", "dagbag_import_timeout"))
        self.memory_mb = int(settings.get("core", "dagbag_import_memory_limit"))
        self.plugins_folder = str(settings.plugins_folder)
        folder = settings.dags_folder
        self.dags_folder: Path | None = folder.resolve() if folder.is_dir() else folder
        self.include_examples = bool(settings.get("core", "load_examples"))
        self.examples_folders = example_folders() if self.include_examples else []
        self.metastore = metastore
        self.writer = DagWriter(metastore, paused_at_creation=bool(settings.get("core", "dags_are_paused_at_creation")))
        self._callbacks: CallbackRunner | None = None
        self._files: dict[str, _FileState] = {}
        self._queue: dict[str, None] = {}  # an ordered set
        self._jobs: dict[str, ParseJob] = {}
        self._dirty: set[str] = set()  # changed while its child was parsing: parse again when it answers
        self._next_full = 0.0
        self._full_pending: set[str] | None = None
        self._owner: dict[str, str] = {}  # dag id -> the file that defines it (first one wins)
        self._waiting: dict[str, set[str]] = {}  # dag id -> files refused as duplicates, re-parsed on release
        self._held: dict[str, set[str]] = {}  # file -> ids it was given as the metastore's holder, before parsing
        self._fresh: set[str] = set()  # ids first claimed in the first pass with no holder in the metastore
        self._first_pass = True
        self._warm = False

    # -- public API ---------------------------------------------------------------------------------------

    def run_once(self, *, full: bool | None = None) -> ProcessorReport:
        """One pass: list, parse what changed (everything when ``full`` or when a full pass is due) and wait
        until every parse started has answered or timed out."""
        report = self._pass(drain=True, budget=0.0, full=full, stop=None)
        self._log(report)
        return report

    @property
    def callbacks(self) -> CallbackRunner:
        """Runs the DAG-run and task callbacks the scheduler asked for (see :mod:`zonda.dag_processing.callbacks`)."""
        if self._callbacks is None:
            from zonda.dag_processing.callbacks import CallbackRunner

            self._callbacks = CallbackRunner(self.settings, self.metastore, plugins=self.plugins)
        return self._callbacks

    def run_callbacks(self, timeout: float = 30.0) -> int:
        """Run the pending callback requests one after another (bounded by ``timeout``); how many ran."""
        before = self.callbacks.completed
        self.callbacks.drain(timeout)
        return self.callbacks.completed - before

    def run(self, stop: threading.Event) -> None:
        """Poll every ``poll_interval`` until ``stop`` is set; children still parsing are then stopped."""
        log.info(
            "DAG processor watching %s%s (poll %.2g s, full rescan every %g s, import timeout %g s)",
            self.dags_folder,
            " and the example DAGs" if self.include_examples else "",
            self.poll_interval,
            self.list_interval,
            self.import_timeout,
        )
        from zonda.metastore.retry import OutageGuard, is_transient

        # A metastore outage: back off, one log line when it starts and one when it ends, then go on.
        outage = OutageGuard(
            "DAG processor",
            max_delay=float(self.settings.get("database", "outage_backoff_max")),
            stop=stop,
            logger=log,
        )
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    report = self._pass(drain=False, budget=self.poll_interval, full=None, stop=stop)
                    self._log(report)
                    self.callbacks.poll()
                except Exception as exc:
                    # A crash here would stop DAG updates for good: nothing that goes wrong in a pass does.
                    if is_transient(exc):
                        outage.failed(exc)
                    else:
                        log.exception("DAG processor pass failed; retrying")
                        stop.wait(max(self.poll_interval, 1.0))
                    continue
                outage.succeeded()
                stop.wait(max(0.0, self.poll_interval - (time.monotonic() - started)))
        finally:
            self.close()

    def close(self) -> None:
        """Stop every child still parsing (nothing is written for them), and a running callback after a short
        wait (its request is then done: callbacks are not retried)."""
        if self._callbacks is not None:
            self._callbacks.close()
        for path, job in list(self._jobs.items()):
            job.kill(timed_out=False)
            self._queue[path] = None  # unfinished: parse it again if this processor is used again
        self._jobs.clear()
        for path in list(self._dirty):
            self._queue[path] = None
        self._dirty.clear()

    @property
    def in_flight(self) -> list[str]:
        """Files a child is parsing right now."""
        return list(self._jobs)

    def __enter__(self) -> DagProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_files(self) -> dict[str, tuple[StatKey, bool, str | None]]:
        """Every candidate file with its ``(mtime_ns, size, inode)``, whether safe mode applies and, for a ``.py``
        entry that is no regular file (a FIFO, a device, a symlink loop), why it is not read: one listing
        (``.zondaignore`` honoured, each real directory walked once) and one ``stat`` per file, no reads."""
        from zonda.dagbag import scan_dag_folder

        found: dict[str, tuple[StatKey, bool, str | None]] = {}
        folders: list[tuple[Path, bool]] = []
        if self.dags_folder is not None:
            folders.append((self.dags_folder, True))
        folders.extend((folder, False) for folder in self.examples_folders)
        for folder, safe in folders:
            scan = scan_dag_folder(folder)
            for path in scan.files:
                st = scan.stats.get(str(path))
                if st is not None:
                    found[str(path)] = ((st.st_mtime_ns, st.st_size, st.st_ino), safe, None)
            for name, problem in scan.problems.items():
                try:
                    st = os.lstat(name)
                except OSError:
                    continue
                found[name] = ((st.st_mtime_ns, st.st_size, st.st_ino), safe, problem)
        return found

    # -- one pass -------------------------------------------------------------------------------------------

    def _pass(self, *, drain: bool, budget: float, full: bool | None, stop: threading.Event | None) -> ProcessorReport:
        started = time.perf_counter()
        report = ProcessorReport()
        self._warm_up()
        now = time.monotonic()
        if full is None:
            full = now >= self._next_full
        if full:
            report.full = True
            self._next_full = now + self.list_interval
        listed = self.list_files()
        report.files_listed = len(listed)
        report.list_seconds = time.perf_counter() - started
        gone = [path for path in self._files if path not in listed]
        for path, (stat, safe, problem) in listed.items():
            state = self._files.get(path)
            if state is None:
                self._files[path] = _FileState(stat, safe, problem)
                self._enqueue(path)
            elif full or state.stat != stat or state.problem != problem:
                state.stat = stat
                state.problem = problem
                self._enqueue(path)
        if gone:
            self._forget(gone, report)
        if full:
            self._full_pending = set(listed)
        deadline = time.monotonic() + budget
        while True:
            self._reap(report)
            self._launch(report)
            if drain:
                if not self._jobs and not self._queue:
                    break
            elif time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                break
            if not self._jobs:
                if drain:  # nothing running and nothing launchable: only possible when the queue emptied
                    continue
                remaining = deadline - time.monotonic()
                if stop is not None:
                    stop.wait(max(0.0, remaining))
                else:
                    time.sleep(max(0.0, remaining))
                continue
            wait_for([w for job in self._jobs.values() for w in job.waitables], timeout=self._wake_in(deadline, drain))
        if self._full_pending is not None and not self._full_pending:
            self._full_pending = None
            self._first_pass = False
            self._fresh.clear()
            current = {path for path, state in self._files.items() if state.is_dag_file is not False}
            write_started = time.perf_counter()
            report.writes.merge(self.writer.deactivate_unseen(current))
            report.write_seconds += time.perf_counter() - write_started
        report.duration_seconds = time.perf_counter() - started
        return report

    def _wake_in(self, deadline: float, drain: bool) -> float:
        """How long to wait for children: until the pass's deadline, the next kill, or the moment a running
        child turns slow (which frees a slot for a queued file)."""
        now = time.monotonic()
        moments = [job.kill_at for job in self._jobs.values()]
        if self._queue:
            moments.extend(
                job.started + self.slow_after for job in self._jobs.values() if job.age(now) < self.slow_after
            )
        if not drain:
            moments.append(deadline)
        return max(0.001, min(moments) - now)

    def _enqueue(self, path: str) -> None:
        if path in self._jobs:
            self._dirty.add(path)
        else:
            self._queue[path] = None

    def _launch(self, report: ProcessorReport) -> None:
        from zonda.dagbag import _might_contain_dag

        not_dags: list[str] = []
        while self._queue:
            now = time.monotonic()
            busy = sum(1 for job in self._jobs.values() if job.age(now) < self.slow_after)
            if busy >= self.max_children or len(self._jobs) >= 4 * self.max_children:
                break
            path = next(iter(self._queue))
            del self._queue[path]
            state = self._files.get(path)
            if state is None:
                continue
            if path in self._jobs:
                self._dirty.add(path)
                continue
            if state.problem is not None:  # never opened: its reason is the file's import error
                state.is_dag_file = True
                self._finish(ParseResult(path=path, error=state.problem), report)
                continue
            if state.safe_mode and not _might_contain_dag(Path(path)):
                if state.is_dag_file is not False:
                    not_dags.append(path)
                state.is_dag_file = False
                if self._full_pending is not None:
                    self._full_pending.discard(path)
                continue
            state.is_dag_file = True
            self._jobs[path] = ParseJob(
                path,
                dags_folder=str(self.dags_folder) if self.dags_folder is not None else None,
                import_timeout=self.import_timeout,
                plugins=self.plugins,
                memory_mb=self.memory_mb,
                plugins_folder=self.plugins_folder,
            )
        if not_dags:
            # No longer mentions "dag" and "zonda": whatever it defined before is gone.
            self._write(report, self.writer.forget, not_dags)
            for path in not_dags:
                self._release(path, self._files[path].dag_ids | self._held.pop(path, set()))
                self._files[path].dag_ids = set()

    def _reap(self, report: ProcessorReport) -> None:
        now = time.monotonic()
        for path, job in list(self._jobs.items()):
            if job.ready():
                result = job.collect()
            elif now >= job.kill_at:
                log.warning(
                    "DAG file %s exceeded the import timeout (%g s); killing its parser", path, job.import_timeout
                )
                result = job.kill(timed_out=True)
            else:
                continue
            del self._jobs[path]
            self._finish(result, report)

    def _finish(self, result: ParseResult, report: ProcessorReport) -> None:
        path = result.path
        state = self._files.get(path)
        if state is None:  # deleted while it was being parsed: already forgotten
            return
        self._claim(result, state)
        self._write(report, self.writer.store, result)
        report.parsed.append(result)
        if self._full_pending is not None:
            self._full_pending.discard(path)
        if path in self._dirty:
            self._dirty.discard(path)
            self._queue[path] = None

    def _forget(self, paths: list[str], report: ProcessorReport) -> None:
        for path in paths:
            state = self._files.pop(path)
            self._queue.pop(path, None)
            self._dirty.discard(path)
            job = self._jobs.pop(path, None)
            if job is not None:
                job.kill(timed_out=False)
            if self._full_pending is not None:
                self._full_pending.discard(path)
            self._release(path, state.dag_ids | self._held.pop(path, set()))
        report.removed.extend(paths)
        self._write(report, self.writer.forget, paths)

    def _write(self, report: ProcessorReport, method: Any, arg: Any) -> None:
        started = time.perf_counter()
        report.writes.merge(method(arg))
        report.write_seconds += time.perf_counter() - started

    # -- duplicate DAG ids across files -----------------------------------------------------------------------

    def _claim(self, result: ParseResult, state: _FileState) -> None:
        """Give each DAG id to one file. Children parse files separately, so only the parent can see that two
        files define the same id; the second becomes an import error instead of the two overwriting each
        other's row on every parse. When the first file lets go of the id, the waiting file is parsed again.

        Which file is first is stable: the file that holds the id in the metastore keeps it (a processor that
        restarts does not hand it to whichever child answers first); with no holder (a fresh metastore), the
        first file in sorted path order wins, even when its child answers after the other's.
        """
        path = result.path
        known = state.dag_ids | self._held.pop(path, set())
        owned = {dag_id for dag_id in known if self._owner.get(dag_id) == path}
        holders = self._stored_holders([d.dag_id for d in result.dags if d.dag_id not in self._owner])
        kept = []
        errors = []
        for parsed in result.dags:
            owner = self._owner_of(parsed.dag_id, path, holders.get(parsed.dag_id))
            if owner is not None and owner != path:
                errors.append(duplicate_dag_id_error(parsed.dag_id, owner, path))
                self._waiting.setdefault(parsed.dag_id, set()).add(path)
                continue
            kept.append(parsed)
            if parsed.dag_id not in self._owner and parsed.dag_id not in holders and self._first_pass:
                self._fresh.add(parsed.dag_id)  # no holder at all: an earlier path may still take it
            self._owner[parsed.dag_id] = path
        new_ids = {d.dag_id for d in kept}
        # A file that failed to import keeps its previous DAGs (they stay active in the metastore too).
        claimed = new_ids if result.error is None and not errors else state.dag_ids | new_ids | owned
        self._release(path, (state.dag_ids | owned) - claimed)
        state.dag_ids = claimed
        result.dags = kept
        if errors:
            result.error = "\n".join([*([result.error] if result.error else []), *errors])

    def _owner_of(self, dag_id: str, path: str, holder: str | None) -> str | None:
        """The file that keeps ``dag_id`` when ``path`` defines it too (None: nobody else)."""
        owner = self._owner.get(dag_id)
        if owner is None and holder not in (None, path) and self._may_define(holder, dag_id):
            self._owner[dag_id] = owner = holder  # the metastore's holder, even before its own parse answers
            self._held.setdefault(holder, set()).add(dag_id)
        if owner is None or owner == path or not self._may_define(owner, dag_id):
            return None
        if dag_id in self._fresh and path < owner:
            # First pass on a fresh metastore: the earlier path wins; the other file is parsed again and then
            # reports the duplicate.
            self._files[owner].dag_ids.discard(dag_id)
            self._waiting.setdefault(dag_id, set()).add(owner)
            self._enqueue(owner)
            return None
        return owner

    def _may_define(self, owner: str, dag_id: str) -> bool:
        """``owner`` defines ``dag_id`` as far as this processor knows, or has not been parsed yet."""
        state = self._files.get(owner)
        if state is None or state.is_dag_file is False:
            return False
        return dag_id in state.dag_ids or owner in self._queue or owner in self._jobs or state.is_dag_file is None

    def _stored_holders(self, dag_ids: list[str]) -> dict[str, str]:
        """The files that hold these DAG ids in the metastore (active DAGs only)."""
        if not dag_ids:
            return {}
        from sqlalchemy import select

        dag_t = self.writer.t.dag
        with self.writer.engine.connect() as conn:
            rows = conn.execute(
                select(dag_t.c.dag_id, dag_t.c.fileloc).where(dag_t.c.dag_id.in_(dag_ids), dag_t.c.is_active)
            ).all()
        return {row.dag_id: row.fileloc for row in rows if row.fileloc}

    def _release(self, path: str, dag_ids: set[str]) -> None:
        for dag_id in dag_ids:
            if self._owner.get(dag_id) == path:
                del self._owner[dag_id]
                self._fresh.discard(dag_id)
                for waiting in self._waiting.pop(dag_id, set()):
                    if waiting in self._files and waiting != path:
                        self._enqueue(waiting)

    # -- helpers ------------------------------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Import Zonda's authoring modules (and load the plugins, trusted installation code the scheduler
        loads anyway) once in the parent, so every forked child starts with them."""
        if self._warm:
            return
        self._warm = True
        warm_up()
        if self.plugins is not None and hasattr(self.plugins, "load"):
            try:
                self.plugins.load()
            except Exception:
                log.exception("loading plugins in the DAG processor failed; children will try again")

    def _log(self, report: ProcessorReport) -> None:
        if report.changed:
            log.info("DAG processor: %s", report.summary())
        else:
            log.debug("DAG processor: %s", report.summary())
