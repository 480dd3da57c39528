"""Timezone helpers: Zonda stores and compares aware UTC datetimes everywhere."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_aware(value: datetime, tz: str = "utc") -> datetime:
    """Naive datetimes in DAG files mean ``[core] default_timezone`` (UTC unless configured)."""
    if value.tzinfo is not None:
        return value
    zone = UTC if tz.lower() == "utc" else ZoneInfo(tz)
    return value.replace(tzinfo=zone)


def coerce_datetime(value: datetime | date | str | None, tz: str = "utc") -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    elif not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return make_aware(value, tz)
