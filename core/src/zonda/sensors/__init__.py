"""Sensors: operators that wait for a condition. Names resolve on first access so importing one is cheap."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.sensors.base import BaseSensor, PokeReturnValue
    from zonda.sensors.filesystem import FileSensor
    from zonda.sensors.python import PythonSensor
    from zonda.sensors.time_delta import TimeDeltaSensor

__all__ = [
    "BaseSensor",
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
]

_LAZY = {
    "BaseSensor": "zonda.sensors.base",
    "PokeReturnValue": "zonda.sensors.base",
    "FileSensor": "zonda.sensors.filesystem",
    "PythonSensor": "zonda.sensors.python",
    "TimeDeltaSensor": "zonda.sensors.time_delta",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zonda.sensors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
