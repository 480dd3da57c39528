"""Where connections and variables come from, and the lookup that asks each place in order.

:class:`ConnectionLookup` asks, in this order, and the first answer wins:

1. the secrets backends plugins contribute (hook ``zonda_secrets_backends``, each returning a list);
2. the environment: ``ZONDA_CONN_<CONN_ID>`` as a URI or JSON (:class:`EnvironmentVariablesBackend`);
3. the metastore (:class:`MetastoreBackend`), opened only when the first two did not answer.

A found connection's password and sensitive extras are added to the secrets masker (:mod:`zonda.masking`), so
they are hidden in the logs of the process that fetched them. An unknown id raises
:class:`~zonda.exceptions.ConnectionNotFound` naming every place looked in.

Variables (:meth:`ConnectionLookup.find_variable`) are looked up in the same order: a backend's
``get_variable(key)`` (optional for plugin backends), then ``ZONDA_VAR_<KEY>``, then the metastore. The value of
a variable whose key looks sensitive (``api_token``, ``db_password``...) is added to the masker when found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from zonda.exceptions import ConnectionNotFound
from zonda.secrets.base import SecretsBackend, describe_backend
from zonda.secrets.environment import EnvironmentVariablesBackend

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.connection import Connection
    from zonda.masking import SecretsMasker
    from zonda.metastore.db import Metastore
    from zonda.plugins.manager import PluginManager
    from zonda.secrets.metastore import MetastoreBackend

__all__ = [
    "ConnectionLookup",
    "EnvironmentVariablesBackend",
    "MetastoreBackend",
    "SecretsBackend",
    "get_connection",
]

log = logging.getLogger("zonda.secrets")


class ConnectionLookup:
    """Finds connections: plugin secrets backends, then the environment, then the metastore.

    ``plugins``: the process's :class:`~zonda.plugins.manager.PluginManager`; None builds one from ``settings``
    on the first lookup, False asks no plugin. ``metastore``: a :class:`~zonda.metastore.db.Metastore`, default
    the one ``settings`` names. ``environ`` replaces ``os.environ``. ``masker`` (default: the process's) learns
    each connection found; ``secret_fields_for(conn_type)`` names the extras a connection-type schema marks
    secret, so those are masked too.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        plugins: PluginManager | Literal[False] | None = None,
        metastore: Metastore | None = None,
        environ: Mapping[str, str] | None = None,
        masker: SecretsMasker | None = None,
        secret_fields_for: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        if settings is None:
            from zonda.config import load_settings

            settings = load_settings()
        self.settings = settings
        self._plugins = plugins
        self._plugin_backends: list[Any] | None = None
        self.environment = EnvironmentVariablesBackend(environ)
        self._metastore = metastore
        self._metastore_backend: MetastoreBackend | None = None
        self._masker = masker
        self._secret_fields_for = secret_fields_for

    @property
    def metastore_backend(self) -> MetastoreBackend:
        """The metastore backend (building it opens no database connection)."""
        if self._metastore_backend is None:
            from zonda.secrets.metastore import MetastoreBackend

            self._metastore_backend = MetastoreBackend(self._metastore, self.settings)
        return self._metastore_backend

    def plugin_backends(self) -> list[Any]:
        """The backends plugins contribute, in hook order (asked once per lookup object)."""
        if self._plugin_backends is None:
            plugins = self._plugins
            if plugins is False:
                self._plugin_backends = []
            else:
                if plugins is None:
                    from zonda.plugins.manager import PluginManager

                    plugins = self._plugins = PluginManager.from_settings(self.settings)
                self._plugin_backends = [b for result in plugins.call("zonda_secrets_backends") for b in result or ()]
        return self._plugin_backends

    def backends(self) -> list[Any]:
        """Every backend in the order asked."""
        return [*self.plugin_backends(), self.environment, self.metastore_backend]

    def find(self, conn_id: str) -> tuple[Connection, str]:
        """The connection and a description of where it was found; raises :class:`ConnectionNotFound`."""
        from zonda.identifiers import validate_conn_id

        validate_conn_id(conn_id)
        looked: list[str] = []
        failed: list[str] = []
        plugin_backends = self.plugin_backends()
        for backend in plugin_backends:
            name = describe_backend(backend, conn_id)
            try:
                conn = backend.get_connection(conn_id)
            except Exception as exc:  # a broken secrets backend must not hide the next ones
                from zonda.masking import get_masker

                reason = get_masker().redact_text(f"{type(exc).__name__}: {exc}")
                log.warning("secrets backend %s failed looking up %r; trying the next: %s", name, conn_id, reason)
                failed.append(f"{name} (failed: {reason})")
                continue
            if conn is not None:
                return self._found(conn, conn_id, name)
            failed.append(name)
        looked.append("secrets backends: " + (", ".join(failed) if failed else "none configured"))
        for backend in (self.environment, self.metastore_backend):
            conn = backend.get_connection(conn_id)
            if conn is not None:
                return self._found(conn, conn_id, backend.describe(conn_id))
            looked.append(backend.describe(conn_id))
        raise ConnectionNotFound(
            f"connection {conn_id!r} is not defined; looked in: {'; '.join(looked)}. Add it with "
            f"`zonda connections add {conn_id} --conn-uri TYPE://LOGIN:PASSWORD@HOST:PORT/SCHEMA` or set "
            f"{self.environment.variable_name(conn_id)}"
        )

    def _found(self, conn: Connection, conn_id: str, where: str) -> tuple[Connection, str]:
        if conn.conn_id is None:
            conn.conn_id = conn_id
        masker = self._masker
        if masker is None:
            from zonda.masking import get_masker

            masker = get_masker()
        fields = self._secret_fields_for(conn.conn_type) if self._secret_fields_for and conn.conn_type else ()
        masker.add_connection(conn, fields or ())
        log.debug("connection %r found in %s", conn_id, where)
        return conn, where

    def get_connection(self, conn_id: str) -> Connection:
        return self.find(conn_id)[0]

    # -- variables ----------------------------------------------------------------------------------------

    def find_variable(self, key: str) -> tuple[str, str] | None:
        """The value of variable ``key`` and where it was found, or None when no place defines it (then
        :meth:`variable_places` says where this looked). The key is validated first."""
        from zonda.identifiers import validate_variable_key

        validate_variable_key(key)
        for backend in self.plugin_backends():
            getter = getattr(backend, "get_variable", None)
            if not callable(getter):
                continue  # a backend that holds only connections
            name = describe_backend(backend, key)
            try:
                value = getter(key)
            except Exception as exc:  # a broken secrets backend must not hide the next ones
                from zonda.masking import get_masker

                reason = get_masker().redact_text(f"{type(exc).__name__}: {exc}")
                log.warning("secrets backend %s failed looking up variable %r; trying the next: %s", name, key, reason)
                continue
            if value is not None:
                return self._found_variable(key, value, name)
        value = self.environment.get_variable(key)
        if value is not None:
            return self._found_variable(key, value, f"environment variable {self.environment.variable_env_name(key)}")
        value = self.metastore_backend.get_variable(key)
        if value is not None:
            return self._found_variable(key, value, self.metastore_backend.describe(key))
        return None

    def variable_places(self, key: str) -> str:
        """Where :meth:`find_variable` looks for ``key``, for a "not found" message."""
        backends = [
            describe_backend(b, key) for b in self.plugin_backends() if callable(getattr(b, "get_variable", None))
        ]
        return "; ".join(
            [
                "secrets backends: " + (", ".join(backends) if backends else "none configured"),
                f"environment variable {self.environment.variable_env_name(key)}",
                self.metastore_backend.describe(key),
            ]
        )

    def _found_variable(self, key: str, value: Any, where: str) -> tuple[str, str]:
        if not isinstance(value, str):
            from zonda.exceptions import ZondaException

            raise ZondaException(
                f"{where} returned a {type(value).__name__} for variable {key!r}; a secrets backend must return the "
                "value as a string (JSON text for structured values)"
            )
        from zonda.masking import is_sensitive_name

        if is_sensitive_name(key):
            masker = self._masker
            if masker is None:
                from zonda.masking import get_masker

                masker = get_masker()
            masker.add_variable(key, value)
        log.debug("variable %r found in %s", key, where)
        return value, where


def get_connection(
    conn_id: str,
    *,
    settings: Settings,
    plugins: PluginManager | Literal[False] | None = None,
    metastore: Metastore | None = None,
) -> Connection:
    """One lookup with a fresh :class:`ConnectionLookup` (see it for the arguments)."""
    return ConnectionLookup(settings, plugins=plugins, metastore=metastore).get_connection(conn_id)


def mask_stored_text(text: str, *, metastore: Metastore | None = None, settings: Settings | None = None) -> str:
    """``text`` (an import error's traceback, before it is stored or shown) with every secret the installation
    knows replaced by ``***``: see :func:`mask_stored_texts`."""
    return mask_stored_texts([text], metastore=metastore, settings=settings)[0]


def mask_stored_texts(
    texts: Iterable[str], *, metastore: Metastore | None = None, settings: Settings | None = None
) -> list[str]:
    """``texts`` with every secret the installation knows replaced by ``***``: sensitive configuration,
    ``ZONDA_CONN_*`` credentials and sensitive ``ZONDA_VAR_*`` values (learnt when settings are loaded),
    connections and variables this process fetched, and the connections and sensitive variables stored in the
    metastore (read once for all ``texts``).

    ``metastore``: default the one ``settings`` names, when it exists (a SQLite file that is not there yet is not
    created). A metastore that cannot be read (no table yet, no Fernet key for its rows) hides what it can."""
    from zonda.masking import get_masker

    if settings is None:
        from zonda.config import load_settings

        settings = load_settings()  # also teaches the masker the configuration and ZONDA_CONN_* secrets
    masker = get_masker()
    try:
        _learn_stored_secrets(masker, metastore, settings)
    except Exception as exc:  # masking must not stop the error from being recorded; what is known is still hidden
        log.debug("could not read the metastore's connections and variables to mask them: %s", type(exc).__name__)
    return [masker.redact_text(text) for text in texts]


def _learn_stored_secrets(masker: SecretsMasker, metastore: Metastore | None, settings: Settings) -> None:
    """Teach ``masker`` every stored connection's secrets and every stored variable whose key looks sensitive."""
    from zonda.crypto import FernetKeyError
    from zonda.masking import is_sensitive_name
    from zonda.secrets.metastore import MetastoreBackend

    if metastore is None:
        from zonda.metastore.db import Metastore

        opened = Metastore.existing(settings)
        if opened is None:
            return
        try:
            _learn_stored_secrets(masker, opened, settings)
        finally:
            opened.dispose()
        return
    backend = MetastoreBackend(metastore, settings)
    for row in backend.rows():
        try:
            conn = backend.to_connection(row)
        except FernetKeyError:
            continue  # encrypted with a key this process lacks: it cannot have printed those either
        masker.add_connection(conn)
    for row in backend.variable_rows():
        if not is_sensitive_name(row.key):
            continue
        try:
            value = backend.variable_value(row)
        except FernetKeyError:
            continue
        if value is not None:
            masker.add_variable(row.key, value)


def __getattr__(name: str) -> Any:
    if name == "MetastoreBackend":
        from zonda.secrets.metastore import MetastoreBackend

        return MetastoreBackend
    raise AttributeError(f"module 'zonda.secrets' has no attribute {name!r}")
