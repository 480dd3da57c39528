"""Objects the task context hands out for things looked up on demand: ``conn`` and the asset-event accessors.

``conn.my_conn.host`` reads a connection only when a template or a task touches it, through the same lookup
hooks use (secrets backends, the environment, the metastore), so its password and secret extras are added to
the log masker before any of it can be printed.

Zonda has no assets yet. ``inlet_events``, ``outlet_events`` and ``triggering_asset_events`` still exist so
an Airflow task that reads or writes them runs unchanged: reads find no events, and extras written to an
outlet event are kept on the accessor (nothing consumes them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.connection import Connection

__all__ = ["ConnectionAccessor", "InletEventsAccessor", "OutletEventAccessor", "OutletEventsAccessor"]


class ConnectionAccessor:
    """``conn`` in the task context: ``conn.<conn_id>`` or ``conn.get(conn_id, default)``."""

    __slots__ = ("_lookup", "_plugins", "_settings")

    def __init__(self, settings: Settings | None = None, plugins: Any = None) -> None:
        self._settings = settings
        self._plugins = plugins
        self._lookup: Any = None

    def __repr__(self) -> str:
        return "<connections: conn.CONN_ID>"

    def _connections(self) -> Any:
        from zonda.hooks.base import BaseHook

        if BaseHook.default_lookup is not None:
            return BaseHook.default_lookup
        if self._lookup is None:
            from zonda.secrets import ConnectionLookup

            self._lookup = ConnectionLookup(self._settings, plugins=self._plugins)
        return self._lookup

    def __getattr__(self, conn_id: str) -> Connection:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)  # copy/pickle probes, not connection ids
        return self._connections().get_connection(conn_id)

    def get(self, conn_id: str, default: Any = None) -> Any:
        """The connection, or ``default`` when no place defines it (other errors still raise)."""
        from zonda.exceptions import ConnectionNotFound

        try:
            return self._connections().get_connection(conn_id)
        except ConnectionNotFound:
            return default


class InletEventsAccessor(Mapping[Any, list[Any]]):
    """``inlet_events[asset]``: the events of an inlet asset; always an empty list here (no assets)."""

    def __init__(self, inlets: list[Any] | None = None) -> None:
        self._inlets = list(inlets or [])

    def __getitem__(self, key: Any) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inlets)

    def __len__(self) -> int:
        return len(self._inlets)


class OutletEventAccessor:
    """What ``outlet_events[asset]`` gives: ``extra`` to fill in, as in Airflow."""

    __slots__ = ("extra", "key")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.extra: dict[str, Any] = {}


class OutletEventsAccessor(Mapping[Any, OutletEventAccessor]):
    """``outlet_events[asset]``: one accessor per key, made on first use and kept."""

    def __init__(self) -> None:
        self._events: dict[Any, OutletEventAccessor] = {}

    def __getitem__(self, key: Any) -> OutletEventAccessor:
        if key not in self._events:
            self._events[key] = OutletEventAccessor(key)
        return self._events[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)
