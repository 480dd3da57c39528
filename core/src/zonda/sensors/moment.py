"""Sensors that wait for a moment: the shared part of TimeDeltaSensor, DateTimeSensor and TimeSensor.

A subclass says which moment (:meth:`MomentSensor.target_datetime`); this class pokes until it has passed,
cutting each wait short so the sensor wakes right at the moment, or with ``deferrable=True`` defers once on a
``DateTimeTrigger`` of the moment, so no worker slot is held while it waits (bounded by ``timeout``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from zonda.sensors.base import BaseSensor

if TYPE_CHECKING:
    from zonda.context import Context


class MomentSensor(BaseSensor):
    """Done once ``target_datetime(context)`` has passed (strictly, as in Airflow)."""

    _target: datetime | None = None

    def target_datetime(self, context: Context) -> datetime:
        raise NotImplementedError(f"{type(self).__name__} must implement target_datetime(context)")

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
