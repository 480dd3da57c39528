"""Providers: packages that add connection types, hooks, operators and more, found through manifests.

A provider declares the entry point group ``zonda.providers`` whose target is a manifest (a dict of names and
dotted paths, see :mod:`zonda.providers.manifest`). :meth:`ProvidersRegistry.discover` reads the manifests and
imports no provider code; :meth:`ProvidersRegistry.load_class` imports a class on first use and caches it.

``import zonda.providers`` is cheap: it does not scan entry points. :func:`get_providers_registry` caches one
discovered registry per process (for the CLI and the runtime); tests should build their own with
``ProvidersRegistry.discover()``.
"""

from __future__ import annotations

from functools import lru_cache

from zonda.providers.manifest import (
    ConnectionField,
    ConnectionTypeInfo,
    ProviderInfo,
    supports_version,
    validate_manifest,
)
from zonda.providers.registry import (
    ENTRY_POINT_GROUP,
    ComponentInfo,
    HookInfo,
    ProviderError,
    ProviderImportError,
    ProvidersRegistry,
    UnknownConnectionType,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ComponentInfo",
    "ConnectionField",
    "ConnectionTypeInfo",
    "HookInfo",
    "ProviderError",
    "ProviderImportError",
    "ProviderInfo",
    "ProvidersRegistry",
    "UnknownConnectionType",
    "get_providers_registry",
    "supports_version",
    "validate_manifest",
]


@lru_cache(maxsize=1)
def get_providers_registry() -> ProvidersRegistry:
    """The process's registry, discovered on first call. ``get_providers_registry.cache_clear()`` forgets it
    (after installing a provider into a running process, or between tests that use it)."""
    return ProvidersRegistry.discover()
