"""What several resources share: the engine, ``~`` (every DAG / run), date-range query fields, and the answer of
a bulk clear or mark."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel

from zonda.web.api.models import ApiModel

#: In a path, ``~`` stands for every DAG or every run (Airflow's convention).
EVERY = "~"


def engine() -> Any:
    from zonda.web.context import web_context

    return web_context().engine


def viewer() -> Any:
    """The user asking: list operations take them as ``visible_to``, so per-DAG grants filter in SQL."""
    from zonda.web.sessions import current_user

    return current_user()


def one_or_every(value: str) -> str | None:
    return None if value == EVERY else value


def concrete(value: str, what: str) -> str:
    """Refuse ``~`` where one DAG or run must be named (a write)."""
    from zonda.exceptions import OperationError

    if value == EVERY:
        raise OperationError(f"name one {what}: '~' (every {what}) only works for reading lists")
    return value


def date_range(query: Any, name: str) -> Any:
    from zonda.operations.listings import DateRange

    return DateRange(getattr(query, f"{name}_gte"), getattr(query, f"{name}_lte"))


class DateFilters(BaseModel):
    """The ``*_gte`` / ``*_lte`` query fields of the dates runs and task instances share (with a timezone)."""

    start_date_gte: AwareDatetime | None = None
    start_date_lte: AwareDatetime | None = None
    end_date_gte: AwareDatetime | None = None
    end_date_lte: AwareDatetime | None = None
    updated_at_gte: AwareDatetime | None = None
    updated_at_lte: AwareDatetime | None = None


class ChangedInstance(ApiModel):
    run_id: str
    task_id: str
    map_index: int
    state: str | None


class TaskInstanceChanges(ApiModel):
    """What a clear or a mark changed, or with ``dry_run`` would change (nothing is written then)."""

    dry_run: bool
    task_instances: list[ChangedInstance]
    #: Runs queued again (a clear).
    runs: list[str]
    changed: int
    #: Instances whose state moved between reading and writing: left alone.
    changed_meanwhile: int


def changes(outcome: Any) -> TaskInstanceChanges:
    return TaskInstanceChanges(
        dry_run=outcome.dry_run,
        task_instances=[
            ChangedInstance(
                run_id=r.run_id, task_id=r.task_id, map_index=r.map_index, state=getattr(r.state, "value", r.state)
            )
            for r in outcome.instances
        ],
        runs=list(outcome.runs),
        changed=outcome.changed,
        changed_meanwhile=outcome.changed_meanwhile,
    )


__all__ = ["EVERY", "DateFilters", "TaskInstanceChanges", "changes", "concrete", "engine", "one_or_every", "viewer"]
