"""Trigger-style schedules: a run fires at a point in time, and that time is its logical date.

This is what a cron string means in Airflow 3. A run that fires at ``t`` has the data interval
``[t - interval, t]`` (``interval`` defaults to zero, so the interval is empty) and, as with every Zonda
schedule, its logical date is the interval's start: ``t`` itself unless an ``interval`` is given, which is
Airflow 3.3's rule too. Unlike a data-interval schedule, the first run does not wait for a whole period to
pass: a daily cron starting on 1 January fires at 00:00 on 1 January.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from zonda.exceptions import DagDefinitionError
from zonda.schedule import PRESETS, DataInterval, Timetable, cron_problem

__all__ = ["CronTriggerTimetable", "DeltaTriggerTimetable", "MultipleCronTriggerTimetable"]


def _zone(timezone: str | tzinfo) -> tuple[tzinfo, str]:
    """A tzinfo and the name it is stored under."""
    if isinstance(timezone, str):
        if timezone.upper() == "UTC":
            return UTC, "UTC"
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(timezone), timezone
        except (ZoneInfoNotFoundError, ValueError):
            raise DagDefinitionError(f"unknown timezone {timezone!r}; use an IANA name such as 'Europe/Amsterdam'")
    name = getattr(timezone, "key", None) or getattr(timezone, "name", None) or str(timezone)
    return (UTC, "UTC") if name.upper() == "UTC" else _zone(name)


def _seconds(value: timedelta | float) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, timedelta):
        raise DagDefinitionError(f"expected a timedelta, got {value!r}")
    return value


class _TriggerTimetable(Timetable):
    """Shared rules; subclasses say where the trigger points are (``_at_or_after``, ``_after``, ``_at_or_before``)."""

    fires_forever = True
    interval: timedelta

    def _at_or_after(self, when: datetime) -> datetime:
        raise NotImplementedError

    def _after(self, when: datetime) -> datetime:
        raise NotImplementedError

    def _at_or_before(self, when: datetime) -> datetime:
        raise NotImplementedError

    def _run_at(self, point: datetime) -> DataInterval:
        return DataInterval(point - self.interval, point)

    def infer_data_interval(self, logical_date: datetime) -> DataInterval:
        """A manual run triggered at ``logical_date`` covers the ``interval`` before it, as in Airflow."""
        return DataInterval(logical_date - self.interval, logical_date)

    def next_interval(self, after: datetime) -> DataInterval | None:
        return self._run_at(self._at_or_after(after))

    def next_run(
        self, last_end: datetime | None, start: datetime, *, now: datetime | None = None
    ) -> DataInterval | None:
        point = self._at_or_after(start) if last_end is None else max(self._after(last_end), self._at_or_after(start))
        return self._run_at(point)

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        return self._run_at(self._at_or_before(now))


class CronTriggerTimetable(_TriggerTimetable):
    """Fire at each time ``cron`` matches in ``timezone`` (daylight-saving changes follow that zone's clock).

    ``run_immediately`` only matters for a DAG without ``start_date``: True runs the latest past cron time at
    once, False (the default) waits for the next one, a timedelta runs the past one if it is at most that old.
    """

    def __init__(
        self,
        cron: str,
        *,
        timezone: str | tzinfo = "UTC",
        interval: timedelta | float = timedelta(0),
        run_immediately: bool | timedelta = False,
    ) -> None:
        if cron.strip() == "@once":
            raise DagDefinitionError("CronTriggerTimetable does not take '@once'; use schedule='@once'")
        self.expression = PRESETS.get(cron.strip(), cron.strip())
        problem = cron_problem(self.expression)
        if problem:
            raise DagDefinitionError(f"CronTriggerTimetable: {cron!r} is not a valid cron expression: {problem}")
        self.summary = cron.strip()
        self.tz, self.timezone = _zone(timezone)
        self.interval = _seconds(interval)
        if self.interval < timedelta(0):
            raise DagDefinitionError(f"CronTriggerTimetable: interval must not be negative, got {self.interval}")
        self.run_immediately = run_immediately

    def _step(self, when: datetime, *, forward: bool) -> datetime:
        from croniter import croniter

        itr = croniter(self.expression, when.astimezone(self.tz))
        found = itr.get_next(datetime) if forward else itr.get_prev(datetime)
        return found.astimezone(UTC)

    def _matches(self, when: datetime) -> bool:
        return self._step(when - timedelta(microseconds=1), forward=True) == when

    def _at_or_after(self, when: datetime) -> datetime:
        return when if self._matches(when) else self._step(when, forward=True)

    def _after(self, when: datetime) -> datetime:
        return self._step(when, forward=True)

    def _at_or_before(self, when: datetime) -> datetime:
        return when if self._matches(when) else self._step(when, forward=False)

    def first_start(self, now: datetime) -> datetime:
        past, upcoming = self._at_or_before(now), self._after(now)
        if self.run_immediately is True:
            return past
        if isinstance(self.run_immediately, timedelta):
            return past if now - past <= self.run_immediately else upcoming
        return upcoming

    def serialize(self) -> dict[str, Any]:
        immediately = self.run_immediately
        return {
            "type": "CronTriggerTimetable",
            "summary": self.summary,
            "expression": self.expression,
            "timezone": self.timezone,
            "interval": self.interval.total_seconds(),
            "run_immediately": immediately.total_seconds() if isinstance(immediately, timedelta) else immediately,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> CronTriggerTimetable:
        immediately = data.get("run_immediately", False)
        table = cls(
            data["expression"],
            timezone=data.get("timezone", "UTC"),
            interval=float(data.get("interval", 0)),
            run_immediately=immediately if isinstance(immediately, bool) else timedelta(seconds=immediately),
        )
        table.summary = data.get("summary", table.summary)
        return table


class MultipleCronTriggerTimetable(_TriggerTimetable):
    """Fire whenever any of several cron expressions matches; one run when two match the same time."""

    def __init__(
        self,
        *crons: str,
        timezone: str | tzinfo = "UTC",
        interval: timedelta | float = timedelta(0),
        run_immediately: bool | timedelta = False,
    ) -> None:
        if not crons:
            raise DagDefinitionError("MultipleCronTriggerTimetable needs at least one cron expression")
        self.parts = [
            CronTriggerTimetable(c, timezone=timezone, interval=interval, run_immediately=run_immediately)
            for c in crons
        ]
        self.interval = self.parts[0].interval
        self.summary = ", ".join(part.summary for part in self.parts)

    def _at_or_after(self, when: datetime) -> datetime:
        return min(part._at_or_after(when) for part in self.parts)

    def _after(self, when: datetime) -> datetime:
        return min(part._after(when) for part in self.parts)

    def _at_or_before(self, when: datetime) -> datetime:
        return max(part._at_or_before(when) for part in self.parts)

    def first_start(self, now: datetime) -> datetime:
        return min(part.first_start(now) for part in self.parts)

    def serialize(self) -> dict[str, Any]:
        first = self.parts[0].serialize()
        return {
            "type": "MultipleCronTriggerTimetable",
            "summary": self.summary,
            "expressions": [part.expression for part in self.parts],
            "timezone": first["timezone"],
            "interval": first["interval"],
            "run_immediately": first["run_immediately"],
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> MultipleCronTriggerTimetable:
        immediately = data.get("run_immediately", False)
        return cls(
            *data["expressions"],
            timezone=data.get("timezone", "UTC"),
            interval=float(data.get("interval", 0)),
            run_immediately=immediately if isinstance(immediately, bool) else timedelta(seconds=immediately),
        )


class DeltaTriggerTimetable(_TriggerTimetable):
    """Fire every ``delta``, counted from ``start_date`` (the first run fires at ``start_date`` itself).

    Any moment is a trigger point, as in Airflow: with ``catchup=False`` a DAG that missed runs fires once,
    now, and then every ``delta`` after that.
    """

    def __init__(self, delta: timedelta | float, *, interval: timedelta | float = timedelta(0)) -> None:
        self.delta = _seconds(delta)
        if self.delta <= timedelta(0):
            raise DagDefinitionError(f"DeltaTriggerTimetable: delta must be positive, got {self.delta}")
        self.interval = _seconds(interval)
        self.summary = str(self.delta)

    def _at_or_after(self, when: datetime) -> datetime:
        return when

    def _after(self, when: datetime) -> datetime:
        return when + self.delta

    def _at_or_before(self, when: datetime) -> datetime:
        return when

    def first_start(self, now: datetime) -> datetime:
        return now

    def serialize(self) -> dict[str, Any]:
        return {
            "type": "DeltaTriggerTimetable",
            "summary": self.summary,
            "seconds": self.delta.total_seconds(),
            "interval": self.interval.total_seconds(),
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DeltaTriggerTimetable:
        return cls(float(data["seconds"]), interval=float(data.get("interval", 0)))
