"""Triggers: small asyncio waits a triggerer runs for deferred tasks (``self.defer(trigger=..., ...)``).

A trigger is stored as its class path plus JSON keyword arguments (:func:`~zonda.triggers.base.serialize_trigger`,
:func:`~zonda.triggers.base.trigger_from_row`), never as a pickle, so any triggerer can rebuild it. Names
resolve on first access so importing one is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda._lazy import lazy_exports

if TYPE_CHECKING:
    from zonda.triggers.base import BaseTrigger, TriggerEvent, serialize_trigger, trigger_from_row
    from zonda.triggers.cross_dag import DagStateTrigger, WorkflowTrigger
    from zonda.triggers.file import FileTrigger
    from zonda.triggers.temporal import DateTimeTrigger, TimeDeltaTrigger

__all__ = [
    "BaseTrigger",
    "DagStateTrigger",
    "DateTimeTrigger",
    "FileTrigger",
    "TimeDeltaTrigger",
    "TriggerEvent",
    "WorkflowTrigger",
    "serialize_trigger",
    "trigger_from_row",
]

_LAZY = {
    "BaseTrigger": "zonda.triggers.base",
    "TriggerEvent": "zonda.triggers.base",
    "serialize_trigger": "zonda.triggers.base",
    "trigger_from_row": "zonda.triggers.base",
    "DateTimeTrigger": "zonda.triggers.temporal",
    "TimeDeltaTrigger": "zonda.triggers.temporal",
    "FileTrigger": "zonda.triggers.file",
    "DagStateTrigger": "zonda.triggers.cross_dag",
    "WorkflowTrigger": "zonda.triggers.cross_dag",
}


__getattr__, __dir__ = lazy_exports("zonda.triggers", globals(), _LAZY, __all__)
