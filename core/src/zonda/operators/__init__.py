"""Operators shipped with the core. Names resolve on first access so importing one does not import all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda._lazy import lazy_exports

if TYPE_CHECKING:
    from zonda.operators.base import BaseOperator, MappedOperator
    from zonda.operators.bash import BashOperator
    from zonda.operators.branch_datetime import BranchDateTimeOperator
    from zonda.operators.empty import EmptyOperator
    from zonda.operators.latest_only import LatestOnlyOperator
    from zonda.operators.python import (
        BaseBranchOperator,
        BranchPythonOperator,
        PythonOperator,
        ShortCircuitOperator,
    )
    from zonda.operators.trigger_dagrun import TriggerDagRunOperator
    from zonda.operators.weekday import BranchDayOfWeekOperator, WeekDay

__all__ = [
    "BaseBranchOperator",
    "BaseOperator",
    "BashOperator",
    "BranchDateTimeOperator",
    "BranchDayOfWeekOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "LatestOnlyOperator",
    "MappedOperator",
    "PythonOperator",
    "ShortCircuitOperator",
    "TriggerDagRunOperator",
    "WeekDay",
]

_LAZY = {
    "BaseOperator": "zonda.operators.base",
    "MappedOperator": "zonda.operators.base",
    "BashOperator": "zonda.operators.bash",
    "EmptyOperator": "zonda.operators.empty",
    "PythonOperator": "zonda.operators.python",
    "BranchPythonOperator": "zonda.operators.python",
    "ShortCircuitOperator": "zonda.operators.python",
    "BaseBranchOperator": "zonda.operators.python",
    "LatestOnlyOperator": "zonda.operators.latest_only",
    "BranchDayOfWeekOperator": "zonda.operators.weekday",
    "WeekDay": "zonda.operators.weekday",
    "BranchDateTimeOperator": "zonda.operators.branch_datetime",
    "TriggerDagRunOperator": "zonda.operators.trigger_dagrun",
}


__getattr__, __dir__ = lazy_exports("zonda.operators", globals(), _LAZY, __all__)
