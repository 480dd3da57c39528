"""What the client returns: typed views of Airflow-shaped JSON (``dag_id``, ``dag_run_id``, ``state``, ...).

Each keeps the whole JSON object in ``raw``, so a field the server adds later is still reachable without a client
upgrade. Unknown or missing fields never fail the parse: a client older or newer than the server still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from zonda.state import FINISHED_RUN_STATES

T = TypeVar("T")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp from the API (``Z`` or an offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _tags(value: Any) -> tuple[str, ...]:
    """Airflow sends tags as ``[{"name": "x"}]``; plain strings are accepted too."""
    if not isinstance(value, list):
        return ()
    return tuple(str(tag.get("name")) if isinstance(tag, dict) else str(tag) for tag in value)


@dataclass(frozen=True)
class Dag:
    dag_id: str
    is_paused: bool | None
    is_active: bool | None
    description: str | None
    tags: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dag:
        return cls(
            dag_id=str(data.get("dag_id")),
            is_paused=data.get("is_paused"),
            is_active=data.get("is_active"),
            description=data.get("description"),
            tags=_tags(data.get("tags")),
            raw=data,
        )


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    dag_run_id: str
    state: str | None
    run_type: str | None
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DagRun:
        conf = data.get("conf")
        return cls(
            dag_id=str(data.get("dag_id")),
            dag_run_id=str(data.get("dag_run_id", data.get("run_id"))),
            state=data.get("state"),
            run_type=data.get("run_type"),
            logical_date=parse_time(data.get("logical_date")),
            start_date=parse_time(data.get("start_date")),
            end_date=parse_time(data.get("end_date")),
            conf=conf if isinstance(conf, dict) else {},
            raw=data,
        )


@dataclass(frozen=True)
class TaskInstance:
    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int | None
    start_date: datetime | None
    end_date: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskInstance:
        return cls(
            dag_id=str(data.get("dag_id")),
            dag_run_id=str(data.get("dag_run_id", data.get("run_id"))),
            task_id=str(data.get("task_id")),
            map_index=data["map_index"] if isinstance(data.get("map_index"), int) else -1,
            state=data.get("state"),
            try_number=data.get("try_number"),
            start_date=parse_time(data.get("start_date")),
            end_date=parse_time(data.get("end_date")),
            raw=data,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and ``total_entries`` (None when the server skipped counting)."""

    items: list[T]
    total_entries: int | None


__all__ = ["Dag", "DagRun", "Page", "TaskInstance", "parse_time"]
