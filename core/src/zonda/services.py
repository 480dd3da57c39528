"""Running several long-lived services in one process: ``zonda scheduler`` (scheduler + DAG processor) and
``zonda standalone`` (DAG processor, scheduler, triggerer).

Each service is a callable ``target(stop)`` that returns once the shared ``stop`` event is set. A
:class:`ServiceGroup` runs them as daemon threads; a service that raises is logged and stops the whole group
(a half-running installation is worse than a stopped one), and shutdown joins every thread within one bounded
deadline so a stuck service can never keep the process alive. SIGTERM and SIGINT set the stop event
(:func:`stop_on_signals`); the previous handlers come back afterwards.

Start order matters: an executor that forks its workers (LocalExecutor) must do so before any other thread
exists, so the caller starts the scheduler in the main thread first and only then calls :meth:`start`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings

log = logging.getLogger("zonda.services")

Target = Callable[[threading.Event], None]


def configure_logging(settings: Settings) -> None:
    """Log Zonda's services to stderr at ``[logging] logging_level`` (once per process; leaves a configured
    root logger alone).

    Task processes forked from this one inherit the handler, so it drops task records (``zonda.task*``, and
    anything a library logs while an attempt runs: they belong in that attempt's log file) and redacts secrets
    like the task log handler does.
    """
    from zonda.masking import RedactingFilter

    root = logging.getLogger()
    level = logging.getLevelName(str(settings.get("logging", "logging_level")).upper())
    if not isinstance(level, int):
        level = logging.INFO
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler.addFilter(_NotTaskRecords())
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("zonda").setLevel(level)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))


class _NotTaskRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from zonda.runner.logs import is_captured

        if record.name == "zonda.task" or record.name.startswith("zonda.task."):
            return False
        return not is_captured(record)


@dataclass
class _Service:
    name: str
    target: Target
    thread: threading.Thread | None = None
    error: BaseException | None = None


@dataclass
class ServiceGroup:
    """Services sharing one stop event, run as threads, stopped together within ``join_timeout`` seconds."""

    stop: threading.Event = field(default_factory=threading.Event)
    join_timeout: float = 30.0
    _services: list[_Service] = field(default_factory=list)

    def add(self, name: str, target: Target) -> None:
        self._services.append(_Service(name, target))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._services]

    @property
    def failures(self) -> dict[str, BaseException]:
        """Services that raised, with their exception."""
        return {s.name: s.error for s in self._services if s.error is not None}

    def start(self) -> None:
        for service in self._services:
            if service.thread is not None:
                continue
            service.thread = threading.Thread(
                target=self._run, args=(service,), name=f"zonda-{service.name}", daemon=True
            )
            service.thread.start()

    def _run(self, service: _Service) -> None:
        try:
            service.target(self.stop)
        except BaseException as exc:
            service.error = exc
            log.exception("%s stopped with an error; stopping every service", service.name)
            self.stop.set()
            return
        if not self.stop.is_set():
            log.error("%s returned before it was asked to stop; stopping every service", service.name)
            service.error = RuntimeError(f"{service.name} returned unexpectedly")
            self.stop.set()

    def wait(self, poll: float = 0.5) -> None:
        """Block until the stop event is set (by a signal, by a failing service or by the caller)."""
        while not self.stop.wait(poll):
            pass

    def shutdown(self, timeout: float | None = None) -> list[str]:
        """Set the stop event and join every thread within ``timeout`` seconds in total; the names of those
        still running afterwards (daemon threads: they cannot keep the process alive)."""
        self.stop.set()
        deadline = time.monotonic() + (self.join_timeout if timeout is None else timeout)
        stuck = []
        for service in self._services:
            if service.thread is None:
                continue
            service.thread.join(max(deadline - time.monotonic(), 0.0))
            if service.thread.is_alive():
                stuck.append(service.name)
        if stuck:
            log.warning("still running after the shutdown deadline, abandoned: %s", ", ".join(stuck))
        return stuck


@contextlib.contextmanager
def stop_on_signals(
    stop: threading.Event, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[None]:
    """Within the block, SIGTERM / SIGINT set ``stop`` (a graceful shutdown) instead of killing the process;
    a second SIGINT while stopping raises KeyboardInterrupt. Processes forked meanwhile keep the default
    behaviour. Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            # A process forked from this one (an executor's worker, a parsing child) inherited the handler:
            # there the signal keeps its default meaning, so terminating it terminates it.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("received %s; shutting down gracefully", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def load_service(module: str, attr: str, what: str) -> Any:
    """Import ``module.attr`` only when the service is wanted; a missing module is a one-line error."""
    import importlib

    from zonda.exceptions import ZondaException

    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            raise ZondaException(
                f"{what} is not available: this Zonda installation has no {module} module; "
                "reinstall Zonda (pip install -U zonda, or `python3 dev.py sync` in a checkout)"
            ) from None
        raise
    try:
        return getattr(loaded, attr)
    except AttributeError:
        raise ZondaException(
            f"{what} is not available: {module} has no {attr}; reinstall Zonda (pip install -U zonda)"
        ) from None


class PluginChangeNotice:
    """Says, once per change, that the plugins folder changed under a running scheduler.

    Task processes pick up the change themselves (the executor's workers reload plugins before the next task);
    the scheduler, the DAG processor and the triggerer keep what they imported at start, so a restart is
    needed for them. Looks at most every ``interval`` seconds (a few ``stat`` calls)."""

    def __init__(self, folder: Any, interval: float = 2.0) -> None:
        from zonda.plugins.manager import PluginFolderWatch

        self._watch = PluginFolderWatch(folder, min_interval=interval)

    def check(self) -> Any:
        """The change seen now (and logged), or None."""
        change = self._watch.changes()
        if change is not None:
            log.warning(
                "plugins folder changed (%s): tasks started from now on use it; restart zonda so the scheduler, "
                "the DAG processor and the triggerer use it too",
                change,
            )
        return change


@dataclass
class RunReport:
    """How a :func:`run_scheduler` call ended."""

    passes: int = 0
    stopped_by_signal: bool = False
    abandoned: list[str] = field(default_factory=list)


def run_scheduler(
    settings: Settings,
    *,
    plugins: Any = None,
    dag_processor: bool = True,
    triggerer: bool = False,
    max_passes: int | None = None,
    on_started: Callable[[Any], None] | None = None,
    join_timeout: float = 10.0,
    extra_services: Sequence[tuple[str, Callable[[], Target]]] = (),
) -> RunReport:
    """Run the scheduler in this (main) thread, with the DAG processor and the triggerer as threads.

    The scheduler starts first, so the executor forks its workers while this process has a single thread;
    then the other services start; then scheduler passes run until SIGTERM / SIGINT, a failing service, or
    ``max_passes``. ``extra_services`` are (name, factory) pairs: each factory is called after the scheduler has
    forked its workers and returns the service's target (the web server binds its port there). Shutdown is
    bounded: services get ``join_timeout`` seconds, running tasks the executor's own grace period. A failing
    service raises :class:`~zonda.exceptions.ZondaException` once all is stopped.
    """
    from zonda.exceptions import ZondaException
    from zonda.home_folders import ensure_home_folders
    from zonda.scheduler.scheduler import Scheduler

    for folder in ensure_home_folders(settings):
        log.info("created %s", folder)
    processor_cls = load_service("zonda.dag_processing", "DagProcessor", "the DAG processor") if dag_processor else None
    triggerer_cls = load_service("zonda.triggerer", "Triggerer", "the triggerer") if triggerer else None
    group = ServiceGroup(join_timeout=join_timeout)
    stop = group.stop
    plugin_notice = PluginChangeNotice(settings.plugins_folder)
    scheduler = Scheduler(settings, plugins=plugins, stop=stop)
    report = RunReport()
    with stop_on_signals(stop):
        scheduler.start()  # forks the executor's workers: no other thread may exist yet
        scheduler_error: BaseException | None = None
        looping = False
        try:
            if processor_cls is not None:
                from zonda.metastore.db import Metastore

                # Its own engine: the processor's writes never wait on the scheduler's connections. Not
                # connected here (the scheduler's start checked the schema): the processor's loop rides out a
                # metastore that went away again meanwhile.
                processor = processor_cls(settings, Metastore.from_settings(settings), plugins=plugins)
                group.add("dag-processor", processor.run)
            if triggerer_cls is not None:
                group.add("triggerer", triggerer_cls(settings).run)
            for name, factory in extra_services:
                group.add(name, factory())
            group.start()
            if on_started is not None:
                on_started(scheduler)
            looping = True
            # The scheduler's own loop, the one the tests run; it shuts the scheduler down when it ends.
            report.passes = scheduler.run(max_passes=max_passes, started=True, after_pass=plugin_notice.check)
        except BaseException as exc:
            scheduler_error = exc
            raise
        finally:
            report.stopped_by_signal = stop.is_set() and not group.failures and scheduler_error is None
            report.abandoned = group.shutdown()
            if not looping:
                scheduler.shutdown()
    failures = group.failures
    if failures:
        name, exc = next(iter(failures.items()))
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ZondaException(f"{name} failed ({type(exc).__name__}: {first_line}); everything was stopped")
    return report
