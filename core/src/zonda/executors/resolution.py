"""Which class ``[core] executor`` names: the one place executors are resolved.

A name is looked up in this order, and the first match wins:

1. Zonda's built-ins (``SequentialExecutor``, ``LocalExecutor``), registered by :mod:`zonda.plugins.builtin`
   through the ``zonda_executors`` hook like any plugin's; their names are reserved, so no plugin or provider can
   redirect ``LocalExecutor`` elsewhere.
2. Plugins' ``zonda_executors`` hooks (``{"Name": "package.module:Class"}``).
3. Installed providers' manifests (``"executors": ["package.module:Class", ...]``): each is known as
   ``<provider>.<Class>`` and, unless an earlier source or provider took it, as ``<Class>``.
4. A class path, ``package.module:Class`` or ``package.module.Class``.

Nothing is imported to list names (manifests are data, hooks return dotted paths); the chosen class is imported
once, when first used, and cached. An unknown name is a one-line error naming the close matches and every known
name. The class must subclass :class:`~zonda.executors.base.BaseExecutor`, whose ``capabilities`` tell the
scheduler what it needs to know about it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaConfigError

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.executors.base import BaseExecutor
    from zonda.providers.registry import ProvidersRegistry

log = logging.getLogger("zonda.executors")

#: Executor classes by dotted path, imported once per process.
_classes: dict[str, type[BaseExecutor]] = {}


@dataclass(frozen=True)
class ExecutorEntry:
    """A known executor name: the class it stands for and who registered it."""

    name: str
    path: str
    source: str  # "built-in" | "plugin" | "provider <name>" | "class path"


def builtin_executors() -> dict[str, ExecutorEntry]:
    """Zonda's own executors, as its built-in plugin registers them (nothing else is loaded to know them)."""
    from zonda.plugins import builtin

    return {name: ExecutorEntry(name, path, "built-in") for name, path in builtin.zonda_executors().items()}


def known_executors(plugins: Any = None, registry: ProvidersRegistry | None = None) -> dict[str, ExecutorEntry]:
    """Every executor name, built-ins first, then plugins', then providers' (see the module docstring)."""
    entries = builtin_executors()
    reserved = set(entries)
    if plugins is None:
        from zonda.plugins.manager import PluginManager

        plugins = PluginManager(plugins_folder=None)
    for result in plugins.call("zonda_executors"):
        if not isinstance(result, Mapping):
            log.warning("a zonda_executors hook returned %r, not a dict of names; ignored", result)
            continue
        for key, value in result.items():
            name, path = str(key), str(value)
            if name in reserved:
                if path != entries[name].path:
                    log.warning("a plugin registers executor %r, a built-in name; the built-in one is used", name)
                continue
            entries.setdefault(name, ExecutorEntry(name, path, "plugin"))
    if registry is None:
        from zonda.providers import get_providers_registry

        registry = get_providers_registry()
    for provider in sorted(registry.providers):
        info = registry.providers[provider]
        for path in info.components.get("executors", ()):
            class_name = path.rpartition(":")[2].rpartition(".")[2]
            source = f"provider {info.name}"
            entries.setdefault(f"{info.name}.{class_name}", ExecutorEntry(f"{info.name}.{class_name}", path, source))
            entries.setdefault(class_name, ExecutorEntry(class_name, path, source))
    return entries


def resolve_executor(
    name: str, plugins: Any = None, registry: ProvidersRegistry | None = None
) -> tuple[ExecutorEntry, type[BaseExecutor]]:
    """The entry and the class ``name`` stands for, imported on first use."""
    name = name.strip()
    entry = builtin_executors().get(name)  # the common case loads no plugin and reads no manifest
    if entry is None:
        known = known_executors(plugins, registry)
        entry = known.get(name)
        if entry is None:
            path = _class_path(name)
            if path is None:
                raise ZondaConfigError(_unknown(name, known))
            entry = ExecutorEntry(name, path, "class path")
    return entry, _load_class(entry, registry)


def load_executor(
    settings: Settings, plugins: Any = None, registry: ProvidersRegistry | None = None, **kwargs: Any
) -> BaseExecutor:
    """The executor ``[core] executor`` names, constructed with ``[core] parallelism`` (capped by the
    executor's own ``capabilities.max_parallelism``)."""
    _, cls = resolve_executor(str(settings.get("core", "executor")), plugins, registry)
    return cls(parallelism=int(settings.get("core", "parallelism")), settings=settings, **kwargs)


def _class_path(name: str) -> str | None:
    """``package.module:Class`` as is, ``package.module.Class`` as ``package.module:Class``; None otherwise."""
    import re

    ident = r"[A-Za-z_][A-Za-z0-9_]*"
    if re.fullmatch(rf"{ident}(\.{ident})*:{ident}(\.{ident})*", name):
        return name
    if re.fullmatch(rf"{ident}(\.{ident})+", name):
        module, _, attr = name.rpartition(".")
        return f"{module}:{attr}"
    return None


def _unknown(name: str, known: Mapping[str, ExecutorEntry]) -> str:
    from zonda.suggestions import did_you_mean

    hint = did_you_mean(name, known)
    names = ", ".join(sorted(known))
    return (
        f"unknown executor {name!r} in [core] executor; "
        + (f"{hint} " if hint else "")
        + f"Known executors: {names}; or give a class path 'package.module:Class'"
    )


def _load_class(entry: ExecutorEntry, registry: ProvidersRegistry | None) -> type[BaseExecutor]:
    cached = _classes.get(entry.path)
    if cached is not None:
        return cached
    from zonda.executors.base import BaseExecutor
    from zonda.providers.registry import ProviderImportError, import_dotted_path

    try:
        if entry.source.startswith("provider "):
            if registry is None:
                from zonda.providers import get_providers_registry

                registry = get_providers_registry()
            cls = registry.load_class(entry.path)  # its error names the provider
        else:
            cls = import_dotted_path(entry.path)
    except ProviderImportError as exc:
        raise ZondaConfigError(f"cannot load executor {entry.name!r} ({entry.source}): {exc}") from None
    if not isinstance(cls, type) or not issubclass(cls, BaseExecutor):
        raise ZondaConfigError(
            f"executor {entry.name!r} ({entry.path}, {entry.source}) is not an executor class; "
            "subclass zonda.executors.base.BaseExecutor"
        )
    _classes[entry.path] = cls
    return cls
