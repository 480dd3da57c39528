"""``@continuous``: a new run as soon as the previous one ends, one at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from zonda.schedule import DataInterval, Timetable

__all__ = ["ContinuousTimetable"]


class ContinuousTimetable(Timetable):
    """Each run covers the time from the previous run's interval end (or ``start_date``) to the moment it is
    created. The scheduler creates the next run only when no scheduled run of the DAG is queued or running,
    and a DAG with this schedule must set ``max_active_runs=1``, as Airflow requires."""

    summary = "@continuous"
    active_runs_limit = 1

    def next_interval(self, after: datetime) -> DataInterval | None:
        return DataInterval(after, after)

    def next_run(
        self, last_end: datetime | None, start: datetime, *, now: datetime | None = None
    ) -> DataInterval | None:
        if now is None:
            from zonda.timezone import utcnow

            now = utcnow()
        begin = last_end if last_end is not None and last_end >= start else start
        return DataInterval(begin, max(begin, now))

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        return None

    def first_start(self, now: datetime) -> datetime:
        return now

    def serialize(self) -> dict[str, Any]:
        return {"type": "ContinuousTimetable", "summary": self.summary}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ContinuousTimetable:
        return cls()
