"""Operators shipped with the core. Names resolve on first access so importing one does not import all."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.operators.base import BaseOperator, MappedOperator
    from zonda.operators.bash import BashOperator
    from zonda.operators.empty import EmptyOperator
    from zonda.operators.python import (
        BaseBranchOperator,
        BranchPythonOperator,
        PythonOperator,
        ShortCircuitOperator,
    )

__all__ = [
    "BaseBranchOperator",
    "BaseOperator",
    "BashOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "MappedOperator",
    "PythonOperator",
    "ShortCircuitOperator",
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
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zonda.operators' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
