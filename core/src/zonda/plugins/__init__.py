"""Plugins: discovery, lazy loading, validation and isolated hook calls (pluggy project ``zonda``).

``import zonda.plugins`` is cheap; ``hookimpl`` (and pluggy) load on first access. See
:mod:`zonda.plugins.hookspecs` for every hook, and :class:`~zonda.plugins.manager.PluginManager` for how
plugins are found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from zonda.plugins.manager import PluginManager

__all__ = ["CliCommand", "PluginManager", "hookimpl"]


@dataclass(frozen=True)
class CliCommand:
    """A top-level ``zonda`` command contributed by a plugin (hook ``zonda_cli_commands``).

    ``register`` receives the command's argparse parser to add arguments; ``handler`` runs with the parsed
    arguments and returns an exit code.
    """

    name: str
    help: str
    handler: Callable[[argparse.Namespace], int | None]
    register: Callable[[argparse.ArgumentParser], None] | None = None


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        import pluggy

        value: Any = pluggy.HookimplMarker("zonda")
    elif name == "PluginManager":
        from zonda.plugins.manager import PluginManager as value
    else:
        raise AttributeError(f"module 'zonda.plugins' has no attribute {name!r}")
    globals()[name] = value
    return value
