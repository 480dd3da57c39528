"""The :class:`SecretsBackend` interface: a place connections (and variables) are read from.

Plugins contribute backends through the hook ``zonda_secrets_backends``; they need not subclass this class,
any object with ``get_connection(conn_id)`` works. Subclassing gives ``get_variable`` and ``describe`` for free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.connection import Connection


class SecretsBackend:
    """Where connections and variables come from. Return None for an id or key this backend does not know (the
    next place is asked)."""

    def get_connection(self, conn_id: str) -> Connection | None:
        raise NotImplementedError(f"{type(self).__name__} must implement get_connection(conn_id)")

    def get_variable(self, key: str) -> str | None:
        """A variable's value, or None. Optional: backends that hold only connections keep this default."""
        return None

    def describe(self, conn_id: str) -> str:
        """Where this backend looked for ``conn_id``, for the "connection not found" message."""
        return type(self).__name__


def describe_backend(backend: object, conn_id: str) -> str:
    """:meth:`SecretsBackend.describe` for any backend object, subclass or not."""
    describe = getattr(backend, "describe", None)
    if callable(describe):
        try:
            return str(describe(conn_id))
        except Exception:  # a description must never hide the real error
            pass
    return type(backend).__name__
