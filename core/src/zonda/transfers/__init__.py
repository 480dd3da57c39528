"""Transfer operators: move data from a source hook to a destination hook in bounded batches.

Names resolve on first access so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.transfers.base import BaseTransferOperator, iter_cursor_batches

__all__ = ["BaseTransferOperator", "iter_cursor_batches"]

_LAZY = {
    "BaseTransferOperator": "zonda.transfers.base",
    "iter_cursor_batches": "zonda.transfers.base",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zonda.transfers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
