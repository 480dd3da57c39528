"""The executor interface: queue workloads, learn when they end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import contextlib

    from zonda.config import Settings


@dataclass(frozen=True)
class Workload:
    """Everything a worker needs to run one try of one task instance; JSON-safe (Celery sends it as is)."""

    ti_id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    fileloc: str
    queue: str = "default"
    priority: int = 1
    dag_run_id: int = -1

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    def to_dict(self) -> dict[str, Any]:
        # Every field is a str or an int: a shallow copy is what asdict's deep walk would build, at a fraction
        # of its cost (one per queued task).
        return dict(self.__dict__)

    @property
    def label(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index} ({self.run_id}, try {self.try_number})"


@dataclass(frozen=True)
class TaskEvent:
    """A workload's process ended. ``exit_code`` < 0 means killed by that signal. ``pid``: that process, when the
    executor knows it; the scheduler charges the exit to the task instance only while the row names that pid."""

    workload: Workload
    exit_code: int | None
    error: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class ExecutorCapabilities:
    """What an executor is like, declared by the executor, so the scheduler asks these instead of checking
    classes (any executor, built in or from a plugin or a provider, is treated by what it declares).

    ``keeps_warm_processes``: ``start()`` forks long-lived worker processes on this machine, whose task
    processes each keep a metastore connection (the scheduler starts it before opening any connection or
    thread, and warns at start when the database server cannot take ``parallelism`` more connections).
    ``supports_sqlite``: its tasks can use a SQLite metastore, a file on the scheduler's machine (true only when
    they run there); the scheduler refuses to start it on SQLite otherwise.
    ``max_parallelism``: the most task instances it runs at once whatever ``[core] parallelism`` says (None: no
    limit of its own).
    """

    keeps_warm_processes: bool = False
    supports_sqlite: bool = False
    max_parallelism: int | None = None


def capabilities_of(executor: Any) -> ExecutorCapabilities:
    """What ``executor`` declares; the defaults for an object that declares nothing (an executor passed to the
    scheduler directly need not subclass :class:`BaseExecutor`; one resolved from ``[core] executor`` does)."""
    declared = getattr(executor, "capabilities", None)
    return declared if isinstance(declared, ExecutorCapabilities) else ExecutorCapabilities()


class BaseExecutor:
    name: ClassVar[str] = "BaseExecutor"
    #: Override in a subclass (a new ExecutorCapabilities). The defaults suit an executor whose workers run
    #: elsewhere (Celery, Kubernetes): no processes of its own here, no SQLite, no limit of its own.
    capabilities: ClassVar[ExecutorCapabilities] = ExecutorCapabilities()

    def __init__(self, parallelism: int = 32, settings: Settings | None = None) -> None:
        cap = self.capabilities.max_parallelism
        self.parallelism = max(1, parallelism if cap is None else min(parallelism, cap))
        self.settings = settings
        self.running: dict[tuple[str, str, str, int], Workload] = {}

    @classmethod
    def standalone_workers(cls, settings: Settings) -> contextlib.AbstractContextManager[str] | None:
        """What ``zonda standalone`` runs beside the scheduler so that tasks run on this one machine, as a context
        manager yielding a line for the banner; None when the executor runs its tasks itself. An executor whose
        workers run elsewhere (Celery) starts one local worker here, so the setup can be tried on one machine."""
        return None

    def start(self) -> None:
        """Start worker processes. Called before the scheduler opens database connections, so forks are clean."""

    def queue(self, workload: Workload) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[TaskEvent]:
        """Ended workloads; waits up to ``timeout`` seconds for the first one."""
        raise NotImplementedError

    def adopt(self, workloads: list[Workload]) -> list[Workload]:
        """Take over ``workloads`` that a scheduler now gone handed to an executor of this kind; returns those
        taken, whose ends :meth:`poll` then reports. The others are queued again from scratch.

        Default: none. A LocalExecutor's queue and workers died with their scheduler; an executor whose work
        outlives the scheduler (Celery's messages on the broker) overrides this."""
        return []

    @property
    def open_slots(self) -> int:
        return self.parallelism - len(self.running)

    def end(self, timeout: float = 30.0) -> None:
        """Stop taking work; wait for running tasks up to ``timeout``."""

    def terminate(self) -> None:
        """Stop now: running tasks are told to stop (SIGTERM)."""
