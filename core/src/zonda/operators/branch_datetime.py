"""BranchDateTimeOperator: branch on whether now (or the logical date) lies between two bounds (Airflow's)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from zonda.exceptions import DagDefinitionError
from zonda.operators.python import BaseBranchOperator

if TYPE_CHECKING:
    from zonda.context import Context


def target_times_as_dates(
    base: datetime, lower: datetime | time | None, upper: datetime | time | None
) -> tuple[datetime | None, datetime | None]:
    """Bounds given as times of day become date-times on ``base``'s day; an upper time earlier than the lower
    one means the next day (22:00 to 02:00 spans midnight)."""
    if isinstance(lower, datetime) and isinstance(upper, datetime):
        return lower, upper
    low = datetime.combine(base.date(), lower) if isinstance(lower, time) else lower
    high = datetime.combine(base.date(), upper) if isinstance(upper, time) else upper
    if low is not None and high is not None and high < low:
        high += timedelta(days=1)
    return low, high


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class BranchDateTimeOperator(BaseBranchOperator):
    """Follow ``follow_task_ids_if_true`` when now lies within ``[target_lower, target_upper]``, else
    ``follow_task_ids_if_false``. Either bound may be None (open); each is a datetime or a time of day
    (naive means UTC). ``use_task_logical_date=True`` compares the run's logical date instead of now."""

    def __init__(
        self,
        *,
        follow_task_ids_if_true: str | Iterable[str],
        follow_task_ids_if_false: str | Iterable[str],
        target_lower: datetime | time | None,
        target_upper: datetime | time | None,
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise DagDefinitionError(
                f"task {self.task_id!r}: target_lower and target_upper are both None; give at least one bound"
            )
        for name, bound in (("target_lower", target_lower), ("target_upper", target_upper)):
            if bound is not None and not isinstance(bound, datetime | time):
                raise DagDefinitionError(f"task {self.task_id!r}: {name} must be a datetime or a time, not {bound!r}")
        self.target_lower = target_lower
        self.target_upper = target_upper
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.use_task_logical_date = use_task_logical_date

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        from zonda.timezone import utcnow

        now = context.get("logical_date") if self.use_task_logical_date else utcnow()
        if now is None:
            now = utcnow()
        lower, upper = target_times_as_dates(
            now.astimezone(UTC).replace(tzinfo=None), self.target_lower, self.target_upper
        )
        lower, upper = _aware(lower), _aware(upper)
        if upper is not None and upper < now:
            return self.follow_task_ids_if_false
        if lower is not None and lower > now:
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true
