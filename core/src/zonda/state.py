"""Task instance and DAG run states, with the groupings the runner and trigger rules need."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

_S = TypeVar("_S", bound=StrEnum)


class TaskInstanceState(StrEnum):
    """The state of one try of one task in one DAG run. ``NONE`` is "not decided yet" (Airflow's ``None``),
    stored as SQL NULL. In SQL, compare with ``.value``: a database driver may adapt an enum by its name. Only
    :mod:`zonda.operations.transitions` writes a state."""

    NONE = "none"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    DEFERRED = "deferred"
    REMOVED = "removed"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


FINISHED_STATES = frozenset(
    {
        TaskInstanceState.SUCCESS,
        TaskInstanceState.FAILED,
        TaskInstanceState.SKIPPED,
        TaskInstanceState.UPSTREAM_FAILED,
        TaskInstanceState.REMOVED,
    }
)
FAILED_STATES = frozenset({TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED})
#: An instance a task process holds (or is about to): what counts against pools, parallelism and
#: ``max_active_tasks``.
ACTIVE_STATES = (TaskInstanceState.QUEUED, TaskInstanceState.RUNNING)
#: States a branch's or short circuit's skip applies to, besides "not decided yet": no try is under way (a queued
#: instance has not started either: a task process only runs one it moves from queued to running). Running and
#: deferred ones finish their try.
SKIPPABLE_STATES = frozenset(
    {
        TaskInstanceState.SCHEDULED,
        TaskInstanceState.QUEUED,
        TaskInstanceState.UP_FOR_RETRY,
        TaskInstanceState.UP_FOR_RESCHEDULE,
    }
)
#: A ``depends_on_past`` task runs only when its previous run's instance ended in one of these.
PAST_DEPENDENCY_MET_STATES = frozenset({TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED})


class DagRunState(StrEnum):
    """The state of a DAG run. In SQL, compare with ``.value`` (a database driver may adapt an enum by name)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED_RUN_STATES


FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})


def sql_values(states: Iterable[StrEnum]) -> tuple[str, ...]:
    """The values of ``states``, sorted, for SQL (``column.in_(sql_values(ACTIVE_STATES))``): a database driver
    may adapt an enum member by its name, so SQL compares with values. In Python, compare with the sets
    themselves: a member equals (and hashes as) its value, so ``"success" in FINISHED_STATES`` holds."""
    return tuple(sorted(s.value for s in states))


def one_of(kind: type[_S], value: object, allowed: Iterable[_S], what: str) -> _S:
    """``value`` as a member of ``kind`` when it is one of ``allowed``; else ValueError naming the choices,
    e.g. ``one_of(DagRunState, "done", SETTABLE, "a DAG run's state can be set to")``."""
    choices = list(allowed)
    try:
        member = kind(value)
    except ValueError:
        member = None
    if member not in choices:
        raise ValueError(f"{what} {', '.join(c.value for c in choices)}; not {str(value)!r}")
    return member
