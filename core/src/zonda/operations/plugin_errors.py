"""Plugins that failed to load (import, validation, or a hook that raised), with their tracebacks masked: for the
web server's banner on the DAGs page and the page it links to.

The plugin manager records a failure with its traceback and keeps going; a traceback may quote a secret (a
connection URI in a plugin's module, a password in a failing call), so it is masked on the way out with the
secrets the installation knows now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PluginLoadError:
    name: str
    #: Where the plugin comes from: ``folder: <path>``, ``entry_point: <module:object>``...
    source: str
    traceback: str


def plugin_load_errors(manager: Any, *, settings: Any = None, masked: bool = True) -> list[PluginLoadError]:
    """The failures ``manager`` recorded, by plugin name (loading the plugins first if nothing asked yet).
    ``masked=False`` skips masking for callers that show names only."""
    from zonda.secrets import mask_stored_texts

    failed = sorted(manager.errors(), key=lambda record: record.source.name)
    texts = [record.error or "" for record in failed]
    if masked and texts:
        texts = mask_stored_texts(texts, settings=settings)
    return [
        PluginLoadError(r.source.name, f"{r.source.kind}: {r.source.location}", text)
        for r, text in zip(failed, texts, strict=True)
    ]


__all__ = ["PluginLoadError", "plugin_load_errors"]
