"""The ``macros`` namespace of templates: Airflow's macros, minus the dateutil and pendulum dependencies.

``{{ macros.ds_add(ds, 7) }}``, ``{{ macros.ds_format(ds, "%Y-%m-%d", "%d/%m/%Y") }}``,
``{{ macros.datetime(2024, 1, 1) }}``, ``{{ macros.timedelta(days=1) }}``, ``{{ macros.time.time() }}``,
``{{ macros.uuid.uuid4() }}``, ``{{ macros.random() }}`` (``random.random``, as in Airflow),
``{{ macros.json.dumps(params) }}``, ``{{ macros.datetime_diff_for_humans(dag_run.start_date) }}``.

``macros.uuid``, ``macros.time`` and ``macros.json`` are namespaces holding the functions and values
templates use, not the modules of those names: a module hands out every module it imports (``uuid.os``,
``json.decoder.re``, ``uuid.sys.modules``), which would let a template reach anything. ``time.sleep`` is left
out on purpose: rendering runs before ``execution_timeout`` starts counting, so a template that waits would
hold the worker with nothing to stop it.

Plugins add their own macros through :func:`default_macros` (``extra``) or :meth:`Macros.merged`;
Airflow puts a plugin's macros under ``macros.<plugin_name>``, and a plugin manager can do the same by
passing a namespace per plugin. ``uuid`` and ``random`` are imported on first use, so building a task
context costs no imports.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Macros", "datetime_diff_for_humans", "default_macros", "ds_add", "ds_format"]


def ds_add(ds: str, days: int) -> str:
    """Add (or, if negative, subtract) ``days`` to a ``YYYY-MM-DD`` string: ``ds_add("2015-01-06", -5)``."""
    if not days:
        return str(ds)
    value = datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)
    return value.strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """Re-format a date string: ``ds_format("2015-01-01", "%Y-%m-%d", "%m-%d-%y")`` gives ``"01-01-15"``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)


_UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("week", 7 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
    ("second", 1),
)


def datetime_diff_for_humans(dt: datetime, since: datetime | None = None) -> str:
    """``"3 days ago"`` / ``"in 2 hours"`` relative to now, or ``"5 minutes before"`` / ``"after"`` ``since``.

    Naive datetimes are taken as UTC. Uses the largest whole unit, like pendulum's ``diff_for_humans``.
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    other = datetime.now(UTC) if since is None else since
    if other.tzinfo is None:
        other = other.replace(tzinfo=UTC)
    seconds = (dt - other).total_seconds()
    magnitude = abs(seconds)
    if magnitude < 10:
        amount = "a few seconds"
    else:
        for unit, size in _UNITS:
            if magnitude >= size:
                count = int(magnitude // size)
                amount = f"{count} {unit}" + ("s" if count != 1 else "")
                break
    if since is None:
        return f"in {amount}" if seconds > 0 else f"{amount} ago"
    return f"{amount} after" if seconds > 0 else f"{amount} before"


def _load_uuid() -> types.SimpleNamespace:
    import uuid

    return types.SimpleNamespace(
        uuid1=uuid.uuid1,
        uuid3=uuid.uuid3,
        uuid4=uuid.uuid4,
        uuid5=uuid.uuid5,
        UUID=uuid.UUID,
        NAMESPACE_DNS=uuid.NAMESPACE_DNS,
        NAMESPACE_URL=uuid.NAMESPACE_URL,
        NAMESPACE_OID=uuid.NAMESPACE_OID,
        NAMESPACE_X500=uuid.NAMESPACE_X500,
    )


def _load_random() -> Any:
    from random import random

    return random


_LAZY: dict[str, Callable[[], Any]] = {"uuid": _load_uuid, "random": _load_random}


class Macros(types.SimpleNamespace):
    """A namespace of macros; attribute access is what templates use. ``uuid`` and ``random`` load lazily."""

    def __getattr__(self, name: str) -> Any:
        loader = _LAZY.get(name)
        if loader is None:
            raise AttributeError(f"macros has no {name!r}; known: {', '.join(sorted(self._names()))}")
        value = loader()
        setattr(self, name, value)
        return value

    def _names(self) -> set[str]:
        return set(vars(self)) | set(_LAZY)

    def __dir__(self) -> list[str]:
        """Every macro name, the lazy ones included (what ``dir(macros)`` and tools that walk it see)."""
        return sorted(self._names() | set(dir(type(self))))

    def merged(self, extra: Mapping[str, Any] | None) -> Macros:
        """A new namespace with ``extra`` added on top (for plugin and user macros); ``self`` is unchanged."""
        if not extra:
            return self
        return Macros(**{**vars(self), **extra})


#: ``macros.time``: clocks and conversions of the ``time`` module (no ``sleep``: see the module docstring).
TIME = types.SimpleNamespace(
    time=time.time,
    time_ns=time.time_ns,
    monotonic=time.monotonic,
    perf_counter=time.perf_counter,
    gmtime=time.gmtime,
    localtime=time.localtime,
    mktime=time.mktime,
    strftime=time.strftime,
    strptime=time.strptime,
    ctime=time.ctime,
    asctime=time.asctime,
    timezone=time.timezone,
    altzone=time.altzone,
    tzname=time.tzname,
)

#: ``macros.json``: ``dumps`` and ``loads``.
JSON = types.SimpleNamespace(dumps=json.dumps, loads=json.loads)

_BUILTIN: dict[str, Any] = {
    "ds_add": ds_add,
    "ds_format": ds_format,
    "datetime": datetime,
    "timedelta": timedelta,
    "time": TIME,
    "json": JSON,
    "datetime_diff_for_humans": datetime_diff_for_humans,
}


def default_macros(extra: Mapping[str, Any] | None = None) -> Macros:
    """A fresh namespace of the built-in macros plus ``extra`` (later names win)."""
    if extra:
        return Macros(**{**_BUILTIN, **extra})
    return Macros(**_BUILTIN)
