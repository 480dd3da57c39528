"""Executors run queued task instances. Chosen by ``core.executor`` (a name registered through the
``zonda_executors`` hook, or a ``module:Class`` path) and imported only when chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.executors.base import BaseExecutor


def executor_paths(plugins: Any = None) -> dict[str, str]:
    """Every executor name known: the built-ins and those of plugins and providers (hook ``zonda_executors``)."""
    from zonda.plugins.manager import PluginManager

    manager = plugins if plugins is not None else PluginManager(plugins_folder=None)
    paths: dict[str, str] = {}
    for result in manager.call("zonda_executors"):
        paths.update(result)
    return paths


def load_executor(settings: Settings, plugins: Any = None, **kwargs: Any) -> BaseExecutor:
    """The executor ``core.executor`` names, constructed with ``core.parallelism``."""
    import importlib

    from zonda.exceptions import ZondaConfigError

    name = str(settings.get("core", "executor"))
    path = name if ":" in name else executor_paths(plugins).get(name)
    if path is None:
        known = ", ".join(sorted(executor_paths(plugins)))
        raise ZondaConfigError(
            f"unknown executor {name!r} in [core] executor; use one of {known}, or a class path 'package.module:Class'"
        )
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ZondaConfigError(f"cannot load executor {name!r} from {path!r}: {exc}") from None
    return cls(parallelism=int(settings.get("core", "parallelism")), settings=settings, **kwargs)
