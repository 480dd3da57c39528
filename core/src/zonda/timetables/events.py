"""EventsTimetable: runs at a fixed list of moments (match days, release dates), as in Airflow."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from zonda.exceptions import DagDefinitionError
from zonda.schedule import DataInterval, Timetable

__all__ = ["EventsTimetable"]


class EventsTimetable(Timetable):
    """One run at each of ``event_dates`` (duplicates ignored); each run's data interval is the moment itself.

    A manual run covers the moment it is triggered, or with ``restrict_to_events=True`` the latest event at or
    before it (the first event when all are later). With ``catchup=False`` only the latest past event runs, as
    every Zonda schedule does; Airflow would skip even that one when the DAG first appears.
    """

    def __init__(
        self,
        event_dates: Iterable[datetime],
        restrict_to_events: bool = False,
        presorted: bool = False,
        description: str | None = None,
    ) -> None:
        from zonda.timezone import coerce_datetime

        dates = []
        for value in event_dates:
            if not isinstance(value, datetime):
                raise DagDefinitionError(f"EventsTimetable: event dates must be datetimes, got {value!r}")
            dates.append(coerce_datetime(value))
        self.event_dates: list[datetime] = dates if presorted else sorted(set(dates))  # type: ignore[arg-type]
        self.restrict_to_events = restrict_to_events
        self.description = description
        if description is not None:
            self.summary = description
        else:
            self.summary = f"{len(self.event_dates)} events"

    def _first(self, when: datetime, *, strictly: bool) -> datetime | None:
        find = bisect.bisect_right if strictly else bisect.bisect_left
        index = find(self.event_dates, when)
        return self.event_dates[index] if index < len(self.event_dates) else None

    def infer_data_interval(self, logical_date: datetime) -> DataInterval:
        if not self.restrict_to_events or not self.event_dates:
            return DataInterval(logical_date, logical_date)
        index = bisect.bisect_right(self.event_dates, logical_date)
        event = self.event_dates[index - 1] if index else self.event_dates[0]
        return DataInterval(event, event)

    def next_interval(self, after: datetime) -> DataInterval | None:
        event = self._first(after, strictly=False)
        return DataInterval(event, event) if event is not None else None

    def next_run(
        self, last_end: datetime | None, start: datetime, *, now: datetime | None = None
    ) -> DataInterval | None:
        event = self._first(start, strictly=False)
        if last_end is not None and event is not None and event <= last_end:
            event = self._first(last_end, strictly=True)
        return DataInterval(event, event) if event is not None else None

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        index = bisect.bisect_right(self.event_dates, now)
        if not index:
            return None
        return DataInterval(self.event_dates[index - 1], self.event_dates[index - 1])

    def serialize(self) -> dict[str, Any]:
        return {
            "type": "EventsTimetable",
            "summary": self.summary,
            "event_dates": [d.isoformat() for d in self.event_dates],
            "restrict_to_events": self.restrict_to_events,
            "description": self.description,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> EventsTimetable:
        return cls(
            [datetime.fromisoformat(d) for d in data["event_dates"]],
            restrict_to_events=bool(data.get("restrict_to_events")),
            presorted=True,
            description=data.get("description"),
        )
