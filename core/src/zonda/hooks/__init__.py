"""Hooks: the interface to external systems. ``from zonda.hooks import BaseHook``.

Exports load on first access, so importing this package imports no hook code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.hooks.base import BaseHook

__all__ = ["BaseHook"]


def __getattr__(name: str) -> Any:
    if name == "BaseHook":
        from zonda.hooks.base import BaseHook

        globals()[name] = BaseHook
        return BaseHook
    raise AttributeError(f"module 'zonda.hooks' has no attribute {name!r}")
