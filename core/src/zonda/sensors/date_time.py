"""DateTimeSensor and TimeSensor: wait until a date-time, or a time of day, has passed (Airflow's names)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.sensors.moment import MomentSensor

if TYPE_CHECKING:
    from zonda.context import Context


class DateTimeSensor(MomentSensor):
    """Done once ``target_time`` has passed: a datetime or an ISO 8601 string, templated, so a run can wait
    for a moment of its own (``"{{ data_interval_end + macros.timedelta(hours=1) }}"``). A time without an
    offset is UTC. Unlike :class:`TimeSensor`, a backfilled run whose moment is long past finishes at once.
    ``deferrable=True`` waits in the triggerer (Airflow's ``DateTimeSensorAsync``)."""

    template_fields: ClassVar[tuple[str, ...]] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_time, str | datetime):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: target_time must be a datetime or an ISO 8601 string, "
                f"not {type(target_time).__name__}"
            )
        self.target_time = target_time

    def target_datetime(self, context: Context) -> datetime:
        from zonda.timezone import coerce_datetime

        value = self.target_time
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ZondaException(
                    f"sensor {self.task_id!r}: target_time {self.target_time!r} is not an ISO 8601 date-time; "
                    "write it like 2024-01-01T06:00:00+00:00"
                ) from None
        return coerce_datetime(value)  # type: ignore[return-value]


class TimeSensor(MomentSensor):
    """Done once today's ``target_time`` (a time of day in UTC, or in its own ``tzinfo``) has passed.

    "Today" is the day the sensor runs, as in Airflow: a run backfilled for an old date still waits for the
    time of day (use :class:`DateTimeSensor` to wait relative to the run). ``deferrable=True`` waits in the
    triggerer."""

    def __init__(self, *, target_time: time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_time, time):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: target_time must be a datetime.time, not {type(target_time).__name__}"
            )
        self.target_time = target_time

    def target_datetime(self, context: Context) -> datetime:
        from zonda.timezone import utcnow

        zone = self.target_time.tzinfo or UTC
        today = utcnow().astimezone(zone).date()
        return datetime.combine(today, self.target_time.replace(tzinfo=None), zone).astimezone(UTC)


class DateTimeSensorAsync(DateTimeSensor):
    """Airflow's name for a :class:`DateTimeSensor` that always waits in the triggerer."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(**kwargs)


class TimeSensorAsync(TimeSensor):
    """Airflow's (deprecated) name for a :class:`TimeSensor` that always waits in the triggerer."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(**kwargs)
