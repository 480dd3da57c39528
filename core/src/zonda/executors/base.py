"""The executor interface: queue workloads, learn when they end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
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


class BaseExecutor:
    name: ClassVar[str] = "BaseExecutor"

    def __init__(self, parallelism: int = 32, settings: Settings | None = None) -> None:
        self.parallelism = max(1, parallelism)
        self.settings = settings
        self.running: dict[tuple[str, str, str, int], Workload] = {}

    def start(self) -> None:
        """Start worker processes. Called before the scheduler opens database connections, so forks are clean."""

    def queue(self, workload: Workload) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[TaskEvent]:
        """Ended workloads; waits up to ``timeout`` seconds for the first one."""
        raise NotImplementedError

    @property
    def open_slots(self) -> int:
        return self.parallelism - len(self.running)

    def end(self, timeout: float = 30.0) -> None:
        """Stop taking work; wait for running tasks up to ``timeout``."""

    def terminate(self) -> None:
        """Stop now: running tasks are told to stop (SIGTERM)."""
