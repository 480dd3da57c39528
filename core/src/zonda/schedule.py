"""Schedules (timetables): when a DAG runs and which data interval each run covers.

``schedule`` accepts ``None``, a preset (``@once``, ``@continuous``, ``@hourly``, ...), a cron string, a
``timedelta`` or a :class:`Timetable`. Everything is validated when the DAG is defined. Cron parsing is
croniter's. A scheduled run's logical date is the start of its data interval and it runs when the interval
ends, as in Airflow. A cron string or a preset means what it means in Airflow 3: a trigger-style schedule
(:class:`~zonda.timetables.CronTriggerTimetable`: the run fires at the cron time, its logical date is that
time and its data interval is empty), unless ``[scheduler] create_cron_data_intervals`` is true, which gives
the Airflow 2 meaning (:class:`CronDataIntervalTimetable`: runs cover the interval between two cron times).
A ``timedelta`` likewise means :class:`~zonda.timetables.DeltaTriggerTimetable` (a run every ``delta`` from
``start_date``, each dated by when it fires) unless ``[scheduler] create_delta_data_intervals`` is true. The
other schedules live in :mod:`zonda.timetables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zonda.exceptions import DagDefinitionError

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


@dataclass(frozen=True)
class DataInterval:
    start: datetime
    end: datetime


class Timetable:
    """Base of every schedule. Subclasses say how to infer an interval and what comes next."""

    #: Whether the scheduler creates runs for this timetable at all.
    periodic: bool = True
    summary: str = ""
    #: Most runs of the DAG active at once that this schedule allows (``@continuous``: 1); None: no own limit.
    active_runs_limit: int | None = None

    def infer_data_interval(self, logical_date: datetime) -> DataInterval:
        """The interval of a run given only its logical date (manual runs, ``dags test``)."""
        return DataInterval(logical_date, logical_date)

    def next_interval(self, after: datetime) -> DataInterval | None:
        """The first complete interval starting at or after ``after``; None when there is none."""
        return None

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        """The most recent interval that has ended by ``now`` (what ``catchup=False`` runs next)."""
        return None

    def next_run(
        self, last_end: datetime | None, start: datetime, *, now: datetime | None = None
    ) -> DataInterval | None:
        """The next scheduled run's interval: the first after the latest scheduled run, whose interval ended
        at ``last_end``, or the first at or after ``start`` when there is none yet. ``now`` is the scheduler's
        clock, for schedules that depend on it (``@continuous``).

        Interval schedules start the next interval where the last one ended, which is this default. Trigger
        schedules override it: their runs are points in time, so the next one is strictly later."""
        return self.next_interval(last_end if last_end is not None else start)

    def first_start(self, now: datetime) -> datetime:
        """Where a DAG without ``start_date`` starts when the scheduler first sees it: by default at the end of
        the latest complete interval, so its first run is the next whole interval."""
        latest = self.latest_complete_interval(now)
        return latest.end if latest is not None else now

    def serialize(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "summary": self.summary}


class NullTimetable(Timetable):
    periodic = False
    summary = "None"


class OnceTimetable(Timetable):
    """``@once``: a single run at ``start_date``."""

    periodic = False
    summary = "@once"


class CronDataIntervalTimetable(Timetable):
    """Runs cover the interval between two cron times and run at its end (Airflow 2's meaning of a cron
    string; Airflow 3's with ``[scheduler] create_cron_data_intervals = true``)."""

    fires_forever = True

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = PRESETS.get(expression, expression)
        self.summary = expression
        self.timezone = timezone

    def _iter(self, start: datetime, *, forward: bool) -> datetime:
        from croniter import croniter

        itr = croniter(self.expression, start)
        return itr.get_next(datetime) if forward else itr.get_prev(datetime)

    def _is_aligned(self, when: datetime) -> bool:
        return self._iter(when - timedelta(microseconds=1), forward=True) == when

    def infer_data_interval(self, logical_date: datetime) -> DataInterval:
        start = logical_date if self._is_aligned(logical_date) else self._iter(logical_date, forward=False)
        return DataInterval(start, self._iter(start, forward=True))

    def next_interval(self, after: datetime) -> DataInterval | None:
        start = after if self._is_aligned(after) else self._iter(after, forward=True)
        return DataInterval(start, self._iter(start, forward=True))

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        end = now if self._is_aligned(now) else self._iter(now, forward=False)
        return DataInterval(self._iter(end, forward=False), end)

    def serialize(self) -> dict[str, Any]:
        return {"type": "CronDataIntervalTimetable", "summary": self.summary, "expression": self.expression}


#: The old name, kept for code and stored DAGs that use it.
CronTimetable = CronDataIntervalTimetable


class DeltaDataIntervalTimetable(Timetable):
    """Runs cover ``delta``-long intervals back to back and run at each one's end."""

    fires_forever = True

    def __init__(self, delta: timedelta) -> None:
        self.delta = delta
        self.summary = str(delta)

    def infer_data_interval(self, logical_date: datetime) -> DataInterval:
        return DataInterval(logical_date, logical_date + self.delta)

    def next_interval(self, after: datetime) -> DataInterval | None:
        return DataInterval(after, after + self.delta)

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        return DataInterval(now - self.delta, now)

    def serialize(self) -> dict[str, Any]:
        return {"type": "DeltaDataIntervalTimetable", "summary": self.summary, "seconds": self.delta.total_seconds()}


#: The old name, kept for code and stored DAGs that use it.
DeltaTimetable = DeltaDataIntervalTimetable


def timetable_from_dict(data: dict[str, Any] | None, extra: dict[str, type] | None = None) -> Timetable:
    """Rebuild a timetable from :meth:`Timetable.serialize` output (the scheduler never imports DAG files).

    ``extra`` maps names to timetable classes contributed by plugins (hook ``zonda_timetables``); such a class
    rebuilds itself with a ``deserialize(data)`` classmethod.
    """
    data = data or {}
    kind = data.get("type", "NullTimetable")
    if kind in ("CronDataIntervalTimetable", "CronTimetable"):
        table = CronDataIntervalTimetable(data["expression"])
        table.summary = data.get("summary", data["expression"])
        return table
    if kind in ("DeltaDataIntervalTimetable", "DeltaTimetable"):
        return DeltaDataIntervalTimetable(timedelta(seconds=float(data["seconds"])))
    from zonda.timetables import built_in_timetable

    built_in = built_in_timetable(kind)
    if built_in is not None:
        return built_in.deserialize(data)  # type: ignore[no-any-return]
    if kind == "OnceTimetable":
        return OnceTimetable()
    if kind == "NullTimetable":
        return NullTimetable()
    if extra and kind in extra:
        return extra[kind].deserialize(data)  # type: ignore[attr-defined]
    raise DagDefinitionError(
        f"unknown timetable {kind!r}: the plugin that provides it (hook zonda_timetables) is not installed"
    )


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a valid 5-field cron string, or None if it is."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) != 5:
        return f"it has {len(fields)} fields, cron needs 5 (minute hour day-of-month month day-of-week)"
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:
        return str(exc) or type(exc).__name__
    return None


_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: The most days each month ever has (February: 29, in leap years).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: Where the never-fires search starts: a fixed date, so the answer does not depend on when a file is parsed.
_PROBE_FROM = datetime(2001, 1, 1)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def never_fires_reason(expression: str) -> str | None:
    """Why a valid cron ``expression`` matches no time at all (``0 0 30 2 *``), or None when it fires.

    Day-of-month against month is checked first, to say which month lacks which day; croniter's own bounded
    search, forward and backward from a fixed date, catches every other expression that never matches.
    """
    from croniter import croniter

    try:
        _minutes, _hours, days, months, weekdays = croniter(PRESETS.get(expression, expression)).expanded
    except Exception:  # only the explanation is wanted here; cron_problem reports bad syntax
        days, months, weekdays = ["*"], ["*"], ["*"]
    day_numbers = [d for d in days if isinstance(d, int)]
    only_days_restrict = weekdays == ["*"] and day_numbers and len(day_numbers) == len(days)
    if only_days_restrict and months != ["*"]:
        month_numbers = [m for m in months if isinstance(m, int)]
        if month_numbers and all(min(day_numbers) > _MONTH_DAYS[m - 1] for m in month_numbers):
            names = [_MONTH_NAMES[m - 1] for m in month_numbers]
            day = _ordinal(min(day_numbers))
            if len(names) == 1:
                return f"{names[0]} has no {day} day"
            return f"none of {', '.join(names)} has a {day} day"
    try:
        croniter(PRESETS.get(expression, expression), _PROBE_FROM).get_next(datetime)
        croniter(PRESETS.get(expression, expression), _PROBE_FROM).get_prev(datetime)
    except Exception as exc:  # croniter raises several types for "no match within its bound"
        return f"croniter finds no time it matches ({type(exc).__name__}: {exc})"
    return None


def check_timetable_fires(timetable: Timetable, start_date: datetime | None, *, dag_id: str) -> None:
    """Ask a periodic timetable for its first runs now, at parse time, so one that raises (or never fires) is
    the DAG file's import error instead of the scheduler's problem later."""
    if not timetable.periodic:
        return
    from zonda.timezone import utcnow

    now = utcnow()
    reference = start_date or now
    try:
        first = timetable.next_interval(reference)
        timetable.latest_complete_interval(now)
    except Exception as exc:  # any error in a user timetable becomes this DAG's import error
        raise DagDefinitionError(
            f"DAG {dag_id!r}: schedule {timetable.summary or type(timetable).__name__!r} cannot compute its next "
            f"run ({type(exc).__name__}: {exc}); fix the schedule or the timetable"
        ) from None
    if first is None and getattr(timetable, "fires_forever", False):
        raise DagDefinitionError(
            f"DAG {dag_id!r}: schedule {timetable.summary!r} never fires after {reference}; fix the schedule"
        )


def cron_data_intervals_wanted() -> bool:
    """``[scheduler] create_cron_data_intervals``: whether a cron string means Airflow 2's data-interval
    schedule (read when a DAG with a cron string is defined, as Airflow reads it)."""
    from zonda.config import load_settings

    return bool(load_settings().get("scheduler", "create_cron_data_intervals"))


def delta_data_intervals_wanted() -> bool:
    """``[scheduler] create_delta_data_intervals``: the same choice for a ``timedelta`` schedule."""
    from zonda.config import load_settings

    return bool(load_settings().get("scheduler", "create_delta_data_intervals"))


def _cron_timetable(expression: str, data_intervals: bool | None) -> Timetable:
    if data_intervals is None:
        data_intervals = cron_data_intervals_wanted()
    if data_intervals:
        return CronDataIntervalTimetable(expression)
    from zonda.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable(expression, timezone="UTC")


def parse_schedule(schedule: Any, *, dag_id: str, cron_data_intervals: bool | None = None) -> Timetable:
    """Turn a DAG's ``schedule`` argument into a Timetable, or raise an error naming the DAG and the fix.

    ``cron_data_intervals`` chooses the meaning of a cron string (None: the setting decides)."""
    if schedule is None:
        return NullTimetable()
    if isinstance(schedule, Timetable):
        return schedule
    if isinstance(schedule, timedelta):
        if schedule <= timedelta(0):
            raise DagDefinitionError(f"DAG {dag_id!r}: schedule timedelta must be positive, got {schedule}")
        if delta_data_intervals_wanted():
            return DeltaDataIntervalTimetable(schedule)
        from zonda.timetables.trigger import DeltaTriggerTimetable

        return DeltaTriggerTimetable(schedule)
    if isinstance(schedule, str):
        text = schedule.strip()
        if text == "@once":
            return OnceTimetable()
        if text == "@continuous":
            from zonda.timetables.continuous import ContinuousTimetable

            return ContinuousTimetable()
        if text.startswith("@"):
            if text not in PRESETS:
                raise DagDefinitionError(
                    f"DAG {dag_id!r}: unknown schedule preset {text!r}; use one of @once, @continuous, "
                    + ", ".join(PRESETS)
                )
            return _cron_timetable(text, cron_data_intervals)
        problem = cron_problem(text)
        if problem:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: schedule {text!r} is not a valid cron expression: {problem}. "
                "Write five fields like '0 6 * * *' (06:00 daily) or use a preset such as @daily"
            )
        never = never_fires_reason(text)
        if never:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: schedule {text!r} never fires: {never}; fix the cron expression "
                "(for the last day of a month write 'L' as the day, e.g. '0 0 L 2 *')"
            )
        return _cron_timetable(text, cron_data_intervals)
    raise DagDefinitionError(
        f"DAG {dag_id!r}: schedule must be None, a preset, a cron string, a timedelta or a Timetable, "
        f"not {type(schedule).__name__}"
    )
