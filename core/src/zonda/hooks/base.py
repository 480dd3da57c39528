"""``BaseHook``: what every hook shares, a way to fetch its connection.

Subclasses set the class attributes the UI and ``zonda providers hooks`` show, implement :meth:`get_conn`, and may
implement :meth:`test_connection` (used by ``zonda connections test`` when ``[core] test_connection = enabled``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from zonda.connection import Connection
    from zonda.secrets import ConnectionLookup

log = logging.getLogger("zonda.hooks")

#: Hook classes by conn type. The provider registry fills this in (through :func:`set_hook_class_resolver`);
#: until then nothing is known and ``zonda connections test`` says so.
_hook_class_resolver: Callable[[str], type[BaseHook] | None] | None = None


def set_hook_class_resolver(resolver: Callable[[str], type[BaseHook] | None] | None) -> None:
    """Install the function that maps a conn type to its hook class (the provider registry's lookup)."""
    global _hook_class_resolver
    _hook_class_resolver = resolver


def hook_class_for(conn_type: str) -> type[BaseHook] | None:
    """The hook class that handles ``conn_type``, or None when no installed provider knows it.

    Without an installed resolver, the installed providers' manifests answer (discovered on first use)."""
    if _hook_class_resolver is not None:
        return _hook_class_resolver(conn_type)
    from zonda.providers import get_providers_registry

    registry = get_providers_registry()
    if conn_type not in registry.connection_types:
        return None
    return registry.hook_class_for(conn_type)


class BaseHook:
    """Base class of hooks. ``conn_name_attr`` names the constructor argument holding the connection id
    (``postgres_conn_id``), ``default_conn_name`` its default (``postgres_default``)."""

    conn_name_attr: ClassVar[str] = "conn_id"
    default_conn_name: ClassVar[str] = "default_conn_id"
    conn_type: ClassVar[str] = ""
    hook_name: ClassVar[str] = ""

    #: The lookup every hook uses when none is passed. None (the default) builds a fresh one per call from
    #: :func:`zonda.config.load_settings`; a task process may set one built with its settings and plugin
    #: manager, so plugins are not loaded again for each connection.
    default_lookup: ClassVar[ConnectionLookup | None] = None

    @classmethod
    def get_connection(cls, conn_id: str, *, lookup: ConnectionLookup | None = None) -> Connection:
        """The connection ``conn_id`` from the secrets backends, the environment or the metastore (in that
        order), with settings from :func:`zonda.config.load_settings`; pass ``lookup`` to choose the places."""
        if lookup is None:
            lookup = BaseHook.default_lookup
        if lookup is None:
            from zonda.secrets import ConnectionLookup

            lookup = ConnectionLookup()
        conn = lookup.get_connection(conn_id)
        log.debug("using connection %r (%s)", conn_id, conn.conn_type)
        return conn

    @classmethod
    def get_hook(cls, conn_id: str, *, lookup: ConnectionLookup | None = None) -> BaseHook:
        """A hook for ``conn_id``, of the class that handles its conn type."""
        from zonda.exceptions import ZondaException

        conn = cls.get_connection(conn_id, lookup=lookup)
        hook_class = hook_class_for(conn.conn_type)
        if hook_class is None:
            raise ZondaException(
                f"no hook knows conn type {conn.conn_type!r} (connection {conn_id!r}); install the provider "
                "that defines it (see `zonda providers connection-types`)"
            )
        return hook_class(**{hook_class.conn_name_attr: conn_id})

    def get_conn(self) -> Any:
        """The client, session or DB-API connection this hook wraps. Every hook implements this."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_conn()")

    def test_connection(self) -> tuple[bool, str]:
        """Try the connection: ``(ok, message)``. The default says testing is not supported."""
        return False, f"{type(self).__name__} does not support testing connections"
