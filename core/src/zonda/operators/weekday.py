"""BranchDayOfWeekOperator and the WeekDay names it takes (Airflow's)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError
from zonda.operators.python import BaseBranchOperator

if TYPE_CHECKING:
    from zonda.context import Context


class WeekDay(enum.IntEnum):
    """ISO day numbers, Monday 1 to Sunday 7."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, name: str) -> int:
        """The number of a day given by its English name, any case."""
        try:
            return cls[name.strip().upper()].value
        except KeyError:
            names = ", ".join(day.name.capitalize() for day in cls)
            raise DagDefinitionError(f"{name!r} is not a day of the week; use one of {names}") from None

    @classmethod
    def validate_week_day(cls, week_day: str | WeekDay | Iterable[str | WeekDay]) -> set[int]:
        """The day numbers ``week_day`` names: one name or WeekDay, or several in a set or list."""
        if isinstance(week_day, WeekDay):
            return {week_day.value}
        if isinstance(week_day, str):
            return {cls.get_weekday_number(week_day)}
        if isinstance(week_day, Iterable):
            days = set()
            for day in week_day:
                if isinstance(day, WeekDay):
                    days.add(day.value)
                elif isinstance(day, str):
                    days.add(cls.get_weekday_number(day))
                else:
                    raise DagDefinitionError(f"{day!r} is not a day of the week: give a name or a WeekDay")
            if days:
                return days
        raise DagDefinitionError(
            f"week_day must be a day name, a WeekDay, or a non-empty set of them, not {week_day!r}"
        )


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follow ``follow_task_ids_if_true`` on the days in ``week_day``, else ``follow_task_ids_if_false``.

    The day is today's in UTC, or with ``use_task_logical_date=True`` the run's logical date's (so a backfill
    branches by the day it stands for).
    """

    ui_color: ClassVar[str] = "#ffefeb"

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        try:
            self._week_day_numbers = WeekDay.validate_week_day(week_day)
        except DagDefinitionError as exc:
            raise DagDefinitionError(f"task {self.task_id!r}: {exc}") from None

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        from zonda.timezone import utcnow

        when = context.get("logical_date") if self.use_task_logical_date else utcnow()
        if when is None:
            when = utcnow()
        if when.isoweekday() in self._week_day_numbers:
            return self.follow_task_ids_if_true
        return self.follow_task_ids_if_false
