"""Deadline alerts: "this run should be done by ..." and a callback when it is not (Airflow 3's names).

    from zonda.deadlines import DeadlineAlert, DeadlineReference

    DAG(..., deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(hours=1), callback=SmtpNotifier(to=...)))

A deadline is a reference time plus an interval: the run's logical date (``DAGRUN_LOGICAL_DATE``), the moment it
was queued (``DAGRUN_QUEUED_AT``), or a fixed moment (``FIXED_DATETIME(datetime)``). The scheduler stores one row
per run and alert when the run is queued, and checks the due rows once per loop with one indexed query; a run
still queued or running at its deadline has its callback run once, in the DAG processor (the scheduler never runs
user code). A run that ends in time is left alone.

``callback`` is any callable taking the context (a notifier such as ``SmtpNotifier``), or Airflow's
``SyncCallback`` / ``AsyncCallback`` (a callable or its dotted path, with ``kwargs``; a class is built with the
kwargs and then called with the context, a function is called with ``context=`` and the kwargs). Zonda runs both
kinds in the DAG processor; an ``async`` callable is awaited there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zonda.exceptions import DagDefinitionError

# asyncio, inspect and importlib are imported where used: every DAG file imports this module (DAG(deadline=...)).


@dataclass(frozen=True)
class _Reference:
    """When the interval starts counting; ``kind`` is what the scheduler stores and reads back."""

    kind: str
    at: datetime | None = None

    def serialize(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at.isoformat() if self.at is not None else None}


class DeadlineReference:
    """The reference times Airflow 3 names (``AVERAGE_RUNTIME`` and custom references are not supported)."""

    DAGRUN_LOGICAL_DATE = _Reference("DAGRUN_LOGICAL_DATE")
    DAGRUN_QUEUED_AT = _Reference("DAGRUN_QUEUED_AT")

    @staticmethod
    def FIXED_DATETIME(dt: datetime) -> _Reference:  # Airflow's spelling
        from zonda.timezone import coerce_datetime

        if not isinstance(dt, datetime):
            raise DagDefinitionError(f"DeadlineReference.FIXED_DATETIME needs a datetime, got {type(dt).__name__}")
        return _Reference("FIXED_DATETIME", coerce_datetime(dt))


class Callback:
    """A deadline callback given as a callable or its dotted path, with keyword arguments (Airflow's form)."""

    def __init__(self, callback_callable: Callable[..., Any] | str, kwargs: Mapping[str, Any] | None = None) -> None:
        if kwargs and "context" in kwargs:
            raise DagDefinitionError("'context' is passed to deadline callbacks by Zonda; remove it from kwargs")
        if not callable(callback_callable) and not isinstance(callback_callable, str):
            raise DagDefinitionError(
                f"a deadline callback must be a callable or its dotted path, got {type(callback_callable).__name__}"
            )
        self.callback_callable = callback_callable
        self.kwargs = dict(kwargs or {})

    def resolve(self) -> Callable[..., Any]:
        import importlib

        target = self.callback_callable
        if isinstance(target, str):
            module, _, name = target.rpartition(".")
            target = getattr(importlib.import_module(module), name)
        return target

    def __call__(self, context: Mapping[str, Any]) -> Any:
        import inspect

        target = self.resolve()
        if inspect.isclass(target):
            return _await(target(**self.kwargs)(context))
        return _await(target(context=context, **self.kwargs))


class SyncCallback(Callback):
    """Airflow's name for a callback run synchronously (here: in the DAG processor)."""


class AsyncCallback(Callback):
    """Airflow runs these in the triggerer; Zonda runs them in the DAG processor too, awaiting coroutines."""


def _await(result: Any) -> Any:
    """Await a coroutine (an ``async`` callback) to its end; anything else is already the result."""
    import asyncio
    import inspect

    return asyncio.run(result) if inspect.iscoroutine(result) else result


class DeadlineAlert:
    """A reference, an interval after it, and what to call when a run is not done by then."""

    def __init__(
        self, reference: _Reference, interval: timedelta, callback: Callable[..., Any], name: str | None = None
    ) -> None:
        if not isinstance(reference, _Reference):
            raise DagDefinitionError(
                "DeadlineAlert(reference=...) takes DeadlineReference.DAGRUN_LOGICAL_DATE, DAGRUN_QUEUED_AT or "
                f"FIXED_DATETIME(datetime), got {reference!r}"
            )
        if not isinstance(interval, timedelta):
            raise DagDefinitionError(f"DeadlineAlert(interval=...) takes a timedelta, got {type(interval).__name__}")
        if not callable(callback):
            raise DagDefinitionError(f"DeadlineAlert(callback=...) takes a callable, got {type(callback).__name__}")
        self.reference = reference
        self.interval = interval
        self.callback = callback
        self.name = name

    def serialize(self) -> dict[str, Any]:
        """What the scheduler needs to compute the deadline (never the callback itself)."""
        return {**self.reference.serialize(), "interval": self.interval.total_seconds(), "name": self.name}


def as_alerts(deadline: DeadlineAlert | list[DeadlineAlert] | tuple[DeadlineAlert, ...] | None) -> list[DeadlineAlert]:
    """The DAG's ``deadline=`` argument as a list (one alert or several, as in Airflow)."""
    if deadline is None:
        return []
    alerts = [deadline] if isinstance(deadline, DeadlineAlert) else list(deadline)
    for alert in alerts:
        if not isinstance(alert, DeadlineAlert):
            raise DagDefinitionError(f"deadline= takes DeadlineAlert objects, got {type(alert).__name__}")
    return alerts


def deadline_at(
    spec: Mapping[str, Any], *, logical_date: datetime | None, queued_at: datetime | None
) -> datetime | None:
    """The moment a run must be done by, from a serialized alert; None when the reference is not known (a run
    without a logical date has no logical-date deadline)."""
    kind = spec["kind"]
    if kind == "DAGRUN_LOGICAL_DATE":
        start = logical_date
    elif kind == "DAGRUN_QUEUED_AT":
        start = queued_at
    elif kind == "FIXED_DATETIME":
        start = datetime.fromisoformat(spec["at"])
    else:
        raise ValueError(f"unknown deadline reference {kind!r}")
    return None if start is None else start + timedelta(seconds=float(spec["interval"]))
