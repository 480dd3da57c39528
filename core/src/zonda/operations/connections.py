"""Connections: add, list, get, delete, test, import and export.

Secrets are write-only: everything returned here shows ``***`` for a set password and for extras under
secret-looking keys, and credentials in a host URL are hidden. The one exception is :func:`export_connections`,
which exists to move connections to another installation and returns them decrypted; only ``zonda connections
export`` calls it, and no web or API route may.

Called by ``zonda connections ...`` and the web server and API. Connections live in the metastore, Fernet-encrypted
at rest (:class:`~zonda.secrets.metastore.MetastoreBackend`); :func:`get_connection` looks wherever tasks look
(secrets backends, ``ZONDA_CONN_*``, the metastore).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ConnectionNotFound, OperationError

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.connection import Connection
    from zonda.metastore.db import Metastore
    from zonda.secrets.metastore import MetastoreBackend

MASK = "***"
#: Shown instead of the extras of a row whose extras were encrypted with a key this installation lacks.
UNREADABLE_EXTRA = "(encrypted with a key not in [core] fernet_key)"


@dataclass(frozen=True)
class ConnectionRecord:
    """A connection as it may be shown: password ``***`` when set, sensitive extras ``***``."""

    conn_id: str
    conn_type: str
    description: str | None
    host: str | None
    port: int | None
    schema: str | None
    login: str | None
    password: str | None
    extra: Any = field(default_factory=dict)
    #: Where a lookup found it (``get_connection`` only): the metastore, an environment variable, a backend.
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class ImportSummary:
    added: tuple[str, ...]
    replaced: tuple[str, ...]
    #: Ids that already existed and were left as they are (no ``overwrite``).
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    #: The hook's answer, masked.
    message: str


def masked(
    conn: Connection, *, password_set: bool | None = None, extra: Any = None, source: str | None = None
) -> ConnectionRecord:
    """The shown form of ``conn``: see :class:`ConnectionRecord`."""
    from zonda.masking import SecretsMasker, redact_url_secrets

    has_password = conn.password is not None if password_set is None else password_set
    return ConnectionRecord(
        conn_id=conn.conn_id,
        conn_type=conn.conn_type,
        description=conn.description,
        host=redact_url_secrets(conn.host) if conn.host else conn.host,  # https://user:pw@host
        port=conn.port,
        schema=conn.schema,
        login=conn.login,
        password=MASK if has_password else None,
        extra=SecretsMasker().redact(conn.extra) if extra is None else extra,
        source=source,
    )


def _backend(metastore: Metastore, settings: Settings) -> MetastoreBackend:
    from zonda.secrets.metastore import MetastoreBackend

    return MetastoreBackend(metastore, settings)


def add_connection(metastore: Metastore, settings: Settings, conn: Connection) -> ConnectionRecord:
    """Store a new connection (password and extras encrypted); its id must follow the identifier rules and be
    new (:class:`~zonda.exceptions.Conflict`)."""
    from zonda.identifiers import validate_conn_id

    validate_conn_id(conn.conn_id)
    _backend(metastore, settings).save(conn)
    return masked(conn)


def list_connections(metastore: Metastore, settings: Settings) -> list[ConnectionRecord]:
    """The metastore's connections by id. Passwords are never decrypted for this; extras encrypted with a key
    this installation lacks are shown as :data:`UNREADABLE_EXTRA` rather than failing the list."""
    from zonda.crypto import FernetKeyError
    from zonda.masking import SecretsMasker

    backend = _backend(metastore, settings)
    masker = SecretsMasker()
    records = []
    for row in backend.rows():
        try:
            conn = backend.to_connection(row, password=False)
            extra = masker.redact(conn.extra)
        except FernetKeyError:
            conn = backend.to_connection(row, password=False, extra=False)
            extra = UNREADABLE_EXTRA
        records.append(masked(conn, password_set=row.password is not None, extra=extra))
    return records


def get_connection(settings: Settings, conn_id: str, *, metastore: Metastore | None = None) -> ConnectionRecord:
    """One connection from wherever a task's lookup finds it, with where that was (``source``)."""
    from zonda.secrets import ConnectionLookup

    conn, where = ConnectionLookup(settings, metastore=metastore).find(conn_id)
    return masked(conn, source=where)


def delete_connection(metastore: Metastore, settings: Settings, conn_id: str) -> None:
    """Delete a connection from the metastore; NotFound says so when only an environment variable defines it."""
    from zonda.secrets.environment import EnvironmentVariablesBackend

    try:
        _backend(metastore, settings).delete(conn_id)
    except ConnectionNotFound as exc:
        env = EnvironmentVariablesBackend()
        if env.get_connection(conn_id) is not None:
            raise ConnectionNotFound(
                f"{exc}; it is defined by the environment variable {env.variable_name(conn_id)}, "
                "which only its environment can remove"
            ) from None
        raise


def check_connection(settings: Settings, conn_id: str) -> ConnectionTest:
    """Ask the connection's hook to connect. Refused unless ``[core] test_connection = "enabled"``: it makes this
    process connect to whatever host a connection names. A hook that raises is a failed test, not an error."""
    from zonda.hooks.base import hook_class_for
    from zonda.masking import get_masker
    from zonda.secrets import ConnectionLookup

    if str(settings.get("core", "test_connection")).strip().lower() != "enabled":
        raise OperationError(
            "testing connections is disabled: it makes this process connect to whatever host a connection "
            'names. Enable it with [core] test_connection = "enabled" in zonda.toml or '
            "ZONDA__CORE__TEST_CONNECTION=enabled"
        )
    conn = ConnectionLookup(settings).get_connection(conn_id)
    hook_class = hook_class_for(conn.conn_type)
    if hook_class is None:
        return ConnectionTest(
            False,
            f"no hook knows how to test conn type {conn.conn_type!r}; install the provider that defines it "
            "(see `zonda providers connection-types`)",
        )
    hook = hook_class(**{hook_class.conn_name_attr: conn_id})
    try:
        ok, message = hook.test_connection()
    except Exception as exc:
        ok, message = False, f"{type(exc).__name__}: {exc}"
    return ConnectionTest(bool(ok), get_masker().redact_text(str(message)))


def export_connections(metastore: Metastore, settings: Settings) -> dict[str, dict[str, Any]]:
    """Every metastore connection, DECRYPTED (passwords and extras in plain text), by id. Only for ``zonda
    connections export``, which writes them to an owner-only file and warns; never serve this over HTTP."""
    return {conn.conn_id: conn.to_dict() for conn in _backend(metastore, settings).list_connections()}


def connections_from_data(data: Any, source: str) -> list[Connection]:
    """Connections from the JSON that :func:`export_connections` produces (an object of conn_id -> fields or
    URI), or a list of objects with a ``conn_id``. Every id is checked before any is returned."""
    from zonda.connection import Connection
    from zonda.identifiers import InvalidIdentifier, validate_conn_id

    if isinstance(data, Mapping):
        items: Iterable[tuple[Any, Any]] = list(data.items())
    elif isinstance(data, list):
        items = [(item.get("conn_id") if isinstance(item, dict) else None, item) for item in data]
    else:
        raise OperationError(
            f"{source} must hold a JSON object of conn_id -> connection, as `connections export` writes"
        )
    conns = []
    for conn_id, item in items:
        if not conn_id:
            raise OperationError(f"{source}: every connection needs a conn_id")
        try:
            validate_conn_id(conn_id)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(f"{source}: {exc}") from None
        if isinstance(item, str):
            conns.append(Connection.parse(item, conn_id=conn_id))
        else:
            body = {k: v for k, v in item.items() if k != "conn_id"} if isinstance(item, dict) else item
            conns.append(Connection.from_json(body, conn_id=conn_id))
    return conns


def import_connections(
    metastore: Metastore, settings: Settings, conns: Iterable[Connection], *, overwrite: bool = False
) -> ImportSummary:
    """Store ``conns``; an existing id is replaced with ``overwrite`` and skipped otherwise."""
    backend = _backend(metastore, settings)
    existing = {row.conn_id for row in backend.rows()}
    added: list[str] = []
    replaced: list[str] = []
    skipped: list[str] = []
    for conn in conns:
        if conn.conn_id in existing and not overwrite:
            skipped.append(conn.conn_id)
            continue
        (replaced if backend.save(conn, overwrite=overwrite) else added).append(conn.conn_id)
    return ImportSummary(tuple(added), tuple(replaced), tuple(skipped))
