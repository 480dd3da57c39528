"""TimeDeltaSensor: wait until a fixed time after the end of the run's data interval."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.sensors.base import BaseSensor

if TYPE_CHECKING:
    from zonda.context import Context


class TimeDeltaSensor(BaseSensor):
    """Done once ``data_interval_end + delta`` has passed (``logical_date`` when the context has no interval).

    Typical use: a daily run whose data arrives an hour after midnight, ``delta=timedelta(hours=1)``.
    Waits are cut short to end right at the target, so a 60-second ``poke_interval`` does not add up to a
    minute of latency. With ``deferrable=True`` it defers once on a ``DateTimeTrigger`` at the target (no
    worker slot while it waits), bounded by ``timeout``.
    """

    def __init__(self, *, delta: timedelta | float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(delta, int | float) and not isinstance(delta, bool):
            delta = timedelta(seconds=delta)
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(f"sensor {self.task_id!r}: delta must be a timedelta, not {delta!r}")
        self.delta = delta
        self._target: datetime | None = None

    def target_datetime(self, context: Context) -> datetime:
        from zonda.timezone import coerce_datetime

        base = context.get("data_interval_end") or context.get("logical_date")
        if base is None:
            raise ZondaException(
                f"sensor {self.task_id!r}: the context has neither data_interval_end nor logical_date, "
                "so there is no time to count the delta from"
            )
        return coerce_datetime(base) + self.delta  # type: ignore[operator]

    def execute_deferrable(self, context: Context) -> Any:
        from zonda.timezone import utcnow
        from zonda.triggers.temporal import DateTimeTrigger

        target = self.target_datetime(context)
        if utcnow() >= target:
            self.log.info("The time (%s) has already come", target.isoformat())
            return None
        self.log.info("Deferring until %s", target.isoformat())
        self.defer(
            trigger=DateTimeTrigger(moment=target),
            method_name="execute_complete",
            timeout=self._remaining_timeout(),
        )

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Resumed when the trigger fired: the time has come."""
        self.log.info("The time (%s) has come", event.isoformat() if isinstance(event, datetime) else event)

    def poke(self, context: Context) -> bool:
        from zonda.timezone import utcnow

        self._target = target = self.target_datetime(context)
        self.log.info("Checking if the time (%s) has come", target.isoformat())
        return utcnow() > target

    def _get_next_poke_interval(self, poke_count: int) -> float:
        interval = super()._get_next_poke_interval(poke_count)
        if self._target is None:
            return interval
        from zonda.timezone import utcnow

        until_target = (self._target - utcnow()).total_seconds()
        # A hair past the target, so the next poke succeeds instead of landing a microsecond early.
        return max(0.0, min(interval, until_target + 0.001))
