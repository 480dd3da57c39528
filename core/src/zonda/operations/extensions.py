"""What extends this installation, as the web UI shows it: providers (from their manifests) and plugins (with
their load errors and tracebacks, masked with every secret the installation knows).

Nothing here imports provider code; plugins are those the caller's :class:`~zonda.plugins.manager.PluginManager`
loaded (the web server's own, so the page shows what that process runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.metastore.db import Metastore
    from zonda.plugins.manager import PluginManager
    from zonda.providers.manifest import ProviderInfo
    from zonda.providers.registry import ProviderError


@dataclass(frozen=True)
class PluginRow:
    name: str
    source: str
    version: str
    hooks: tuple[str, ...]
    status: str
    #: The load error's traceback, or the errors of its hook calls, masked; empty when it works.
    error: str


@dataclass(frozen=True)
class ProvidersReport:
    providers: tuple[ProviderInfo, ...]
    skipped: tuple[ProviderError, ...]


def providers_report() -> ProvidersReport:
    from zonda.providers import get_providers_registry

    registry = get_providers_registry()
    return ProvidersReport(tuple(registry.providers.values()), tuple(registry.errors))


def plugin_rows(
    plugins: PluginManager,
    settings: Settings,
    *,
    metastore: Metastore | None = None,
    refused: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
) -> list[PluginRow]:
    """Every plugin with its status; ``refused`` adds reasons found elsewhere (web views refused by name)."""
    from zonda.secrets import mask_stored_texts

    records = plugins.records()
    problems: dict[str, list[str]] = {}
    for plugin, hook, text in plugins.call_errors:
        problems.setdefault(plugin, []).append(f"{hook} raised:\n{text}")
    for plugin, reason in refused:
        problems.setdefault(plugin, []).append(reason)
    texts = ["\n\n".join(filter(None, [r.error or "", *problems.get(r.source.name, [])])) for r in records]
    masked = mask_stored_texts(texts, metastore=metastore, settings=settings) if any(texts) else texts
    rows = []
    for record, text in zip(records, masked, strict=True):
        row: dict[str, Any] = record.as_row()
        status = row["status"] if not (text and row["status"] == "loaded") else "loaded with errors"
        rows.append(PluginRow(row["name"], row["source"], row["version"], tuple(row["hooks"]), status, text))
    return rows


__all__ = ["PluginRow", "ProvidersReport", "plugin_rows", "providers_report"]
