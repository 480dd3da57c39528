"""Executors run queued task instances. Chosen by ``[core] executor``: a built-in, a plugin's or a provider's
executor name, or a class path, resolved in one place (:mod:`zonda.executors.resolution`) and imported only
when chosen. Every executor's worker runs a task through :func:`zonda.executors.workload.execute_workload`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.executors.base import BaseExecutor


def executor_paths(plugins: Any = None, registry: Any = None) -> dict[str, str]:
    """Every executor name known, as ``{name: "package.module:Class"}`` (built-ins, plugins, providers)."""
    from zonda.executors.resolution import known_executors

    return {name: entry.path for name, entry in known_executors(plugins, registry).items()}


def load_executor(settings: Settings, plugins: Any = None, registry: Any = None, **kwargs: Any) -> BaseExecutor:
    """The executor ``[core] executor`` names, constructed with ``[core] parallelism``."""
    from zonda.executors.resolution import load_executor as load

    return load(settings, plugins, registry, **kwargs)
