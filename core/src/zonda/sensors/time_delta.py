"""TimeDeltaSensor: wait until a fixed time after the end of the run's data interval."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.sensors.moment import MomentSensor

if TYPE_CHECKING:
    from zonda.context import Context


class TimeDeltaSensor(MomentSensor):
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
