"""Time triggers: fire at a moment (:class:`DateTimeTrigger`) or after a delay (:class:`TimeDeltaTrigger`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from zonda.exceptions import TriggerError
from zonda.triggers.base import BaseTrigger, TriggerEvent

#: Longest single sleep: a long wait re-reads the clock now and then, so a wall-clock jump is noticed.
_MAX_SLEEP = 60.0


class DateTimeTrigger(BaseTrigger):
    """Fires once ``moment`` (an aware datetime) has passed; the event's payload is ``moment``."""

    def __init__(self, moment: datetime | str) -> None:
        super().__init__()
        if isinstance(moment, str):
            try:
                moment = datetime.fromisoformat(moment)
            except ValueError:
                raise TriggerError(f"DateTimeTrigger: moment {moment!r} is not an ISO datetime") from None
        if not isinstance(moment, datetime):
            raise TriggerError(f"DateTimeTrigger: moment must be a datetime, not {type(moment).__name__}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise TriggerError(f"DateTimeTrigger: moment must be timezone-aware, got naive {moment.isoformat()}")
        self.moment = moment

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "zonda.triggers.temporal.DateTimeTrigger", {"moment": self.moment}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        from zonda.timezone import utcnow

        while True:
            remaining = (self.moment - utcnow()).total_seconds()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, _MAX_SLEEP))
        yield TriggerEvent(self.moment)


class TimeDeltaTrigger(DateTimeTrigger):
    """Fires ``delta`` (a timedelta or seconds) after it is created.

    Stored as the :class:`DateTimeTrigger` of that moment, so a triggerer restart does not restart the wait.
    """

    def __init__(self, delta: timedelta | float) -> None:
        from zonda.timezone import utcnow

        if isinstance(delta, int | float) and not isinstance(delta, bool):
            delta = timedelta(seconds=delta)
        if not isinstance(delta, timedelta):
            raise TriggerError(f"TimeDeltaTrigger: delta must be a timedelta or seconds, not {delta!r}")
        super().__init__(utcnow() + delta)
        self.delta = delta
