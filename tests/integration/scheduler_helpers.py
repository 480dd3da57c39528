"""Shared helpers for the scheduler tests (``tests/core/test_scheduler.py``, ``tests/integration/
test_scheduler_faults.py``): a configured home, DAG files with a ledger, driving a scheduler in this process or
in subprocesses, and sampling how many task instances are active at once.

The ledger is the proof of what ran: every task appends one line ``run_id,task_id,map_index,try_number,pid,
event,time`` (one ``os.write`` on an ``O_APPEND`` descriptor, so lines of concurrent tasks never interleave).

Everything that waits is bounded by a deadline; every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from zonda.executors.base import BaseExecutor, ExecutorCapabilities

if TYPE_CHECKING:
    import pytest

    from zonda.config import Settings
    from zonda.metastore.db import Metastore

TERMINAL_TI = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
TERMINAL_RUN = frozenset({"success", "failed"})

#: Prepended to every DAG file: ``record(context, event)`` appends one ledger line.
LEDGER_PREAMBLE = """
import os as _os
import time as _time

LEDGER = {ledger!r}


def record(context, event="end"):
    ti = context["ti"]
    line = "%s,%s,%s,%s,%s,%s,%.6f\\n" % (
        ti.run_id, ti.task_id, ti.map_index, ti.try_number, _os.getpid(), event, _time.time()
    )
    fd = _os.open(LEDGER, _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT, 0o644)
    try:
        _os.write(fd, line.encode())
    finally:
        _os.close(fd)
"""


# --- configuration ----------------------------------------------------------------------------------------------


def env_name(section: str, key: str) -> str:
    return f"ZONDA__{section.upper()}__{key.upper()}"


def configure(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str | None,
    options: dict[tuple[str, str], Any] | None = None,
) -> tuple[Settings, Metastore]:
    """Point ``home`` at ``url`` (None: the home's SQLite file) through environment variables, which the
    executor's workers read too (they load their own settings from the home), and initialise the metastore."""
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore

    (home / "dags").mkdir(exist_ok=True)
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    # These tests are about scheduling a DAG, not about a new DAG starting paused (test_paused_at_creation.py).
    monkeypatch.setenv("ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION", "false")
    if url is not None:
        monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", url)
    for (section, key), value in (options or {}).items():
        monkeypatch.setenv(env_name(section, key), str(value))
    settings = load_settings(home)
    metastore = Metastore.from_settings(settings)
    metastore.init()
    return settings, metastore


def subprocess_env(home: Path, url: str, options: dict[tuple[str, str], Any] | None = None) -> dict[str, str]:
    """The environment of a scheduler subprocess: this one without ``ZONDA__*``, plus the home and ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(
        ZONDA_HOME=str(home),
        ZONDA__DATABASE__SQL_ALCHEMY_CONN=url,
        ZONDA__CORE__EXECUTOR="LocalExecutor",
        ZONDA__CORE__LOAD_EXAMPLES="false",
        ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",
        PYTHONUNBUFFERED="1",
    )
    for (section, key), value in (options or {}).items():
        env[env_name(section, key)] = str(value)
    return env


# --- DAG files ------------------------------------------------------------------------------------------------


def write_dag(home: Path, name: str, body: str, ledger: Path | None = None) -> Path:
    """Write ``dags/<name>``: the ledger preamble (when ``ledger``) and the dedented ``body``."""
    source = textwrap.dedent(body).lstrip()
    if ledger is not None:
        source = LEDGER_PREAMBLE.format(ledger=str(ledger)).lstrip() + "\n\n" + source
    path = home / "dags" / name
    path.write_text(source, encoding="utf-8")
    return path


def store_dags(settings: Settings, metastore: Metastore, *, expect_errors: bool = False) -> Any:
    """Parse the DAGs folder once with the DAG processor (serialized DAGs into the metastore)."""
    from zonda.dag_processing import DagProcessor

    with DagProcessor(settings, metastore) as processor:
        report = processor.run_once(full=True)
    if not expect_errors:
        assert not report.errors, report.errors
    return report


def load_dag_file(path: Path) -> Any:
    """A DagBag of the one DAG file ``path``, which must import cleanly."""
    from zonda.dagbag import DagBag

    bag = DagBag(None)
    bag.process_file(path)
    assert not bag.import_errors, bag.import_errors
    return bag


def scheduled_outcomes(
    settings: Settings, metastore: Metastore, dag_ids: Iterable[str], timeout: float = 60
) -> dict[str, tuple[str, dict[str, str | None]]]:
    """Store the DAGs folder, trigger one run of each DAG, let a scheduler with the SequentialExecutor run them
    all; ``dag_id -> (run state, task states)``."""
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    store_dags(settings, metastore)
    runs = {dag_id: int(trigger_dag(metastore.engine, dag_id)["id"]) for dag_id in dag_ids}
    scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
    run_states = drive(scheduler, runs.values(), timeout=timeout)
    return {dag_id: (run_states[run_id], states_by_task(metastore.engine, run_id)) for dag_id, run_id in runs.items()}


# --- the ledger -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    pid: int
    event: str
    at: float

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.run_id, self.task_id, self.map_index, self.try_number)


def read_ledger(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        run_id, task_id, map_index, try_number, pid, event, at = line.split(",")
        entries.append(Entry(run_id, task_id, int(map_index), int(try_number), int(pid), event, float(at)))
    return entries


def duplicates(entries: Iterable[Entry], event: str) -> dict[tuple[str, str, int, int], int]:
    """Ledger keys ``(run_id, task_id, map_index, try)`` recorded more than once for ``event``."""
    counts = Counter(e.key for e in entries if e.event == event)
    return {key: n for key, n in counts.items() if n > 1}


# --- metastore queries -------------------------------------------------------------------------------------------


def run_states(engine: Any, run_ids: Iterable[int]) -> dict[int, str]:
    from sqlalchemy import select

    from zonda.metastore import tables as t

    ids = list(run_ids)
    with engine.connect() as conn:
        rows = conn.execute(select(t.dag_run.c.id, t.dag_run.c.state).where(t.dag_run.c.id.in_(ids))).all()
    return {r.id: r.state for r in rows}


def task_instances(engine: Any, dag_run_id: int | None = None, dag_id: str | None = None) -> list[Any]:
    from sqlalchemy import select

    from zonda.metastore import tables as t

    ti = t.task_instance
    query = select(ti).order_by(ti.c.task_id, ti.c.map_index)
    if dag_run_id is not None:
        query = query.where(ti.c.dag_run_id == dag_run_id)
    if dag_id is not None:
        query = query.where(ti.c.dag_id == dag_id)
    with engine.connect() as conn:
        return conn.execute(query).all()


def states_by_task(engine: Any, dag_run_id: int) -> dict[str, str | None]:
    return {
        (r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]"): r.state
        for r in task_instances(engine, dag_run_id)
    }


def unsuccessful_report(engine: Any, home: Path, run_ids: Iterable[int], scheduler_logs: Iterable[str] = ()) -> str:
    """What went wrong, for an assertion message: each task instance of ``run_ids`` that did not succeed, with its
    try logs (under ``home/logs``) and every scheduler log line that names it, so a failure explains itself."""
    from zonda.runner.logs import attempt_log_path

    logs = list(scheduler_logs)
    parts = []
    for run_id in run_ids:
        for row in task_instances(engine, run_id):
            if row.state == "success":
                continue
            parts.append(
                f"--- {row.dag_id}.{row.task_id}[{row.map_index}] of {row.run_id}: {row.state}, try {row.try_number}, "
                f"pid {row.pid}, queued by job {row.queued_by_job_id}, start {row.start_date}, end {row.end_date}, "
                f"last heartbeat {row.last_heartbeat_at}"
            )
            for attempt in range(1, (row.try_number or 0) + 2):
                path = attempt_log_path(home / "logs", row.dag_id, row.run_id, row.task_id, row.map_index, attempt)
                if path.exists():
                    parts.append(f"try {attempt} log:\n" + path.read_text(encoding="utf-8", errors="replace")[-3000:])
            named = re.compile(rf"\b{re.escape(row.dag_id)}\.{re.escape(row.task_id)}\b")
            for index, text in enumerate(logs):
                lines = [line for line in text.splitlines() if named.search(line)]
                if lines:
                    parts.append(f"scheduler log {index} on {row.task_id}:\n" + "\n".join(lines[-20:]))
    for index, text in enumerate(logs):
        problems = [line for line in text.splitlines() if "ERROR" in line or "WARNING" in line or "Error" in line]
        if problems:
            parts.append(f"scheduler log {index}, warnings and errors:\n" + "\n".join(problems[-30:]))
    return "\n".join(parts)


def dag_runs(engine: Any, dag_id: str) -> list[Any]:
    from sqlalchemy import select

    from zonda.metastore import tables as t

    dr = t.dag_run
    with engine.connect() as conn:
        return conn.execute(select(dr).where(dr.c.dag_id == dag_id).order_by(dr.c.logical_date, dr.c.id)).all()


def create_pool(engine: Any, name: str, slots: int) -> None:
    from sqlalchemy import insert

    from zonda.metastore import tables as t

    with engine.begin() as conn:
        conn.execute(insert(t.pool).values(pool=name, slots=slots, description="test", include_deferred=False))


def set_paused(engine: Any, dag_id: str, paused: bool) -> None:
    from sqlalchemy import update

    from zonda.metastore import tables as t

    with engine.begin() as conn:
        conn.execute(update(t.dag).where(t.dag.c.dag_id == dag_id).values(is_paused=paused))


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- driving a scheduler in this process -------------------------------------------------------------------------


def drive(
    scheduler: Any,
    run_ids: Iterable[int],
    timeout: float,
    *,
    on_pass: Callable[[], None] | None = None,
    start: bool = True,
    sampler: Sampler | None = None,
) -> dict[int, str]:
    """``start()``, then passes until every run in ``run_ids`` is success/failed (bounded), then ``shutdown()``.

    A ``sampler`` is started only after ``start()``: the LocalExecutor forks its workers there, and forking
    while another thread holds a lock (SQLite's, logging's) can deadlock the child.
    """
    ids = list(run_ids)
    engine = scheduler.metastore.engine
    deadline = time.monotonic() + timeout
    if start:
        scheduler.start()
    try:
        if sampler is not None:
            sampler.__enter__()
        while True:
            scheduler.run_once()
            if on_pass is not None:
                on_pass()
            states = run_states(engine, ids)
            if len(states) == len(ids) and all(s in TERMINAL_RUN for s in states.values()):
                return states
            if time.monotonic() >= deadline:
                detail = {run_id: states_by_task(engine, run_id) for run_id in ids}
                raise AssertionError(f"runs not finished within {timeout} s: {states}; task instances: {detail}")
    finally:
        if sampler is not None:
            sampler.__exit__()
        scheduler.shutdown()


# --- sampling concurrency ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    total: int
    by_pool: dict[str, int]
    by_dag: dict[str, int]


@dataclass
class Sampler:
    """Counts active task instances every ``interval`` seconds in a thread, on its own connection."""

    url: str
    interval: float
    states: tuple[str, ...] = ("queued", "running")
    samples: list[Sample] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="ti-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        from sqlalchemy import func, select

        from zonda.metastore import tables as t
        from zonda.metastore.db import Metastore

        ti = t.task_instance
        metastore = Metastore(self.url)
        query = (
            select(ti.c.dag_id, ti.c.pool, func.coalesce(func.sum(ti.c.pool_slots), 0), func.count())
            .where(ti.c.state.in_(self.states))
            .group_by(ti.c.dag_id, ti.c.pool)
        )
        try:
            with metastore.engine.connect() as conn:
                while not self._stop.is_set():
                    try:
                        rows = conn.execute(query).all()
                        conn.rollback()
                    except Exception as exc:  # a locked SQLite file: try again next tick
                        conn.rollback()
                        self.errors.append(exc)
                        self._stop.wait(self.interval)
                        continue
                    by_pool: Counter[str] = Counter()
                    by_dag: Counter[str] = Counter()
                    total = 0
                    for dag_id, pool, slots, count in rows:
                        by_pool[pool] += int(slots)
                        by_dag[dag_id] += int(count)
                        total += int(count)
                    self.samples.append(Sample(total, dict(by_pool), dict(by_dag)))
                    self._stop.wait(self.interval)
        finally:
            metastore.dispose()

    def max_total(self) -> int:
        return max((s.total for s in self.samples), default=0)

    def max_pool(self, pool: str) -> int:
        return max((s.by_pool.get(pool, 0) for s in self.samples), default=0)

    def max_dag(self, dag_id: str) -> int:
        return max((s.by_dag.get(dag_id, 0) for s in self.samples), default=0)


# --- scheduler subprocesses ---------------------------------------------------------------------------------------

SCHEDULER_CODE = (
    "import sys\n"
    "from zonda.config import load_settings\n"
    "from zonda.services import configure_logging, run_scheduler\n"
    "settings = load_settings()\n"
    "configure_logging(settings)\n"
    "run_scheduler(settings, dag_processor=sys.argv[1] in ('with-dag-processor', 'all'), triggerer=sys.argv[1] == 'all')\n"
)


@dataclass
class SchedulerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the scheduler process only (its executor's workers and task processes are left alone)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill_group(self) -> None:
        """SIGKILL everything of its session: the scheduler, its workers, their task processes, orphans."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def start_scheduler(
    env: dict[str, str], log: Path, *, dag_processor: bool = False, triggerer: bool = False, cwd: Path | None = None
) -> SchedulerProcess:
    """A scheduler (and, when asked, the DAG processor, or the DAG processor and the triggerer) in a subprocess
    of its own session."""
    mode = "all" if triggerer else "with-dag-processor" if dag_processor else "scheduler-only"
    return start_process([sys.executable, "-c", SCHEDULER_CODE, mode], env, log, cwd=cwd)


def start_process(argv: list[str], env: dict[str, str], log: Path, *, cwd: Path | None = None) -> SchedulerProcess:
    """``argv`` in a subprocess of its own session, its output appended to ``log``."""
    handle = log.open("ab")
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        handle.close()
    return SchedulerProcess(proc, log)


@contextlib.contextmanager
def scheduler_processes() -> Iterator[list[SchedulerProcess]]:
    """A list to add scheduler processes to; every one (and its whole session) is killed on exit."""
    started: list[SchedulerProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill_group()


def session_pids(session_id: int) -> list[int]:
    """Live processes whose session id is ``session_id`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == session_id:
            pids.append(int(entry.name))
    return pids


# --- load ---------------------------------------------------------------------------------------------------------

#: A busy loop that ends by itself when the test process that started it is gone (even after kill -9).
_HOG = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    sum(range(200000))\n"


@contextlib.contextmanager
def cpu_hogs(count: int = 2) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` busy-loop processes for the duration of the block (a machine as busy as a full test suite on
    two cores), always killed on exit. The fault tests run under them, so a timing assumption that only
    holds on an idle machine fails here rather than in CI."""
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            hogs.append(subprocess.Popen([sys.executable, "-c", _HOG], stdin=subprocess.DEVNULL))
        yield hogs
    finally:
        for hog in hogs:
            with contextlib.suppress(ProcessLookupError):
                hog.kill()
        for hog in hogs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                hog.wait(10)


class LedgerSetup:
    """A test's installation: a home on the database ``url`` (None: the home's SQLite file), configured with
    ``options``, whose DAG files append to a ledger; scheduler processes are started from it, or schedulers
    driven in this process. Each test module adds how it runs and waits for runs."""

    def __init__(self, home: Path, url: str | None, monkeypatch: Any, options: dict[Any, Any] | None = None) -> None:
        self.home, self.options = home, options or {}
        self.settings, self.metastore = configure(home, monkeypatch, url, self.options)
        self.url: str = self.settings.sql_alchemy_conn
        self.ledger = home / "ledger.txt"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.metastore.dispose()

    @property
    def engine(self) -> Any:
        return self.metastore.engine

    def dag(self, name: str, body: str) -> Path:
        return write_dag(self.home, name, body, ledger=self.ledger)

    def store(self) -> Any:
        return store_dags(self.settings, self.metastore)

    def trigger(self, dag_id: str, **kwargs: Any) -> int:
        from zonda.scheduler.runs import trigger_dag

        return int(trigger_dag(self.engine, dag_id, **kwargs)["id"])

    def start_scheduler(self, started: list[SchedulerProcess], name: str, **kwargs: Any) -> SchedulerProcess:
        env = subprocess_env(self.home, self.url, self.options)
        process = start_scheduler(env, self.home / f"{name}.log", cwd=self.home, **kwargs)
        started.append(process)
        return process

    def start_command(self, started: list[SchedulerProcess], name: str, *args: str) -> SchedulerProcess:
        """``zonda ARGS`` (the installed command, as a user runs it) against this set-up."""
        env = subprocess_env(self.home, self.url, self.options)
        argv = [sys.executable, "-m", "zonda", *args]
        process = start_process(argv, env, self.home / f"{name}.log", cwd=self.home)
        started.append(process)
        return process

    def entries(self) -> list[Entry]:
        return read_ledger(self.ledger)

    def unsuccessful(self, run_ids: list[int], processes: list[SchedulerProcess]) -> str:
        """Each instance of ``run_ids`` that did not succeed, with its try logs and what the schedulers said."""
        return unsuccessful_report(self.engine, self.home, run_ids, [p.output() for p in processes])


# --- executors ----------------------------------------------------------------------------------------------


class KeepingExecutor(BaseExecutor):
    """Keeps what the scheduler queues and runs nothing, as a remote executor hands workloads to its broker: the
    test sends or runs the workloads itself."""

    name = "KeepingExecutor"
    capabilities = ExecutorCapabilities(supports_sqlite=True)

    def __init__(self, parallelism: int = 16, settings: Any = None) -> None:
        super().__init__(parallelism, settings)
        self.sent: list[Any] = []

    def queue(self, workload: Any) -> None:
        self.running[workload.key] = workload
        self.sent.append(workload)

    def poll(self, timeout: float) -> list:
        return []
