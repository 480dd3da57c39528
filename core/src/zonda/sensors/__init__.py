"""Sensors: operators that wait for a condition. Names resolve on first access so importing one is cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda._lazy import lazy_exports

if TYPE_CHECKING:
    from zonda.sensors.base import BaseSensor, PokeReturnValue
    from zonda.sensors.bash import BashSensor
    from zonda.sensors.date_time import DateTimeSensor, DateTimeSensorAsync, TimeSensor, TimeSensorAsync
    from zonda.sensors.external_task import ExternalTaskSensor
    from zonda.sensors.filesystem import FileSensor
    from zonda.sensors.python import PythonSensor
    from zonda.sensors.time_delta import TimeDeltaSensor

__all__ = [
    "BaseSensor",
    "BashSensor",
    "DateTimeSensor",
    "DateTimeSensorAsync",
    "ExternalTaskSensor",
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
    "TimeSensor",
    "TimeSensorAsync",
]

_LAZY = {
    "BaseSensor": "zonda.sensors.base",
    "PokeReturnValue": "zonda.sensors.base",
    "FileSensor": "zonda.sensors.filesystem",
    "PythonSensor": "zonda.sensors.python",
    "TimeDeltaSensor": "zonda.sensors.time_delta",
    "BashSensor": "zonda.sensors.bash",
    "DateTimeSensor": "zonda.sensors.date_time",
    "TimeSensor": "zonda.sensors.date_time",
    "DateTimeSensorAsync": "zonda.sensors.date_time",
    "TimeSensorAsync": "zonda.sensors.date_time",
    "ExternalTaskSensor": "zonda.sensors.external_task",
}


__getattr__, __dir__ = lazy_exports("zonda.sensors", globals(), _LAZY, __all__)
