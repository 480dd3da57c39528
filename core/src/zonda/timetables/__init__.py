"""Schedules a DAG can take as ``schedule=``, with Airflow 3's names: ``from zonda.timetables import ...``.

Strings and timedeltas are turned into these by :func:`zonda.schedule.parse_schedule`. Names resolve on first
access so importing one is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zonda._lazy import lazy_exports

if TYPE_CHECKING:
    from zonda.schedule import (
        CronDataIntervalTimetable,
        DataInterval,
        DeltaDataIntervalTimetable,
        NullTimetable,
        OnceTimetable,
        Timetable,
    )
    from zonda.timetables.continuous import ContinuousTimetable
    from zonda.timetables.events import EventsTimetable
    from zonda.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable, MultipleCronTriggerTimetable

__all__ = [
    "ContinuousTimetable",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DataInterval",
    "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "MultipleCronTriggerTimetable",
    "NullTimetable",
    "OnceTimetable",
    "Timetable",
    "built_in_timetable",
]

_LAZY = {
    "Timetable": "zonda.schedule",
    "DataInterval": "zonda.schedule",
    "NullTimetable": "zonda.schedule",
    "OnceTimetable": "zonda.schedule",
    "CronDataIntervalTimetable": "zonda.schedule",
    "DeltaDataIntervalTimetable": "zonda.schedule",
    "CronTriggerTimetable": "zonda.timetables.trigger",
    "MultipleCronTriggerTimetable": "zonda.timetables.trigger",
    "DeltaTriggerTimetable": "zonda.timetables.trigger",
    "EventsTimetable": "zonda.timetables.events",
    "ContinuousTimetable": "zonda.timetables.continuous",
}


#: The built-in timetables stored DAGs name by ``type`` that :func:`built_in_timetable` rebuilds.
_STORED = (
    "ContinuousTimetable",
    "CronTriggerTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "MultipleCronTriggerTimetable",
)


def built_in_timetable(kind: str) -> Any:
    """The class of a built-in timetable stored as ``{"type": kind, ...}``, or None (imported on demand)."""
    if kind not in _STORED:
        return None
    import importlib

    return getattr(importlib.import_module(_LAZY[kind]), kind)


__getattr__, __dir__ = lazy_exports("zonda.timetables", globals(), _LAZY, __all__)
