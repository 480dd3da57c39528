"""Connections and variables stored in the metastore, with their secrets Fernet-encrypted at rest.

Rows live in the ``connection`` and ``variable`` tables (mapped by :class:`zonda.metastore.models.ConnectionModel`
and ``VariableModel``). This backend reads and writes them with SQLAlchemy Core on the same tables, because a
task process looking up its connection or variable should not pay for loading the ORM (see
:mod:`zonda.metastore.db`). Connections' passwords and extras are encrypted; a variable's value always is.

Nothing touches the database until a method needs it: building the backend opens no engine, so a lookup that
an earlier backend answered costs no connection.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from zonda.exceptions import Conflict, ConnectionNotFound, ZondaException
from zonda.secrets.base import SecretsBackend

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet
    from sqlalchemy.engine import Row

    from zonda.config import Settings
    from zonda.connection import Connection
    from zonda.metastore.db import Metastore


class ConnectionExists(Conflict):
    """A connection with this id is already in the metastore."""


class MetastoreBackend(SecretsBackend):
    """Read, write, delete and re-encrypt connections in the metastore.

    ``metastore`` defaults to the one ``settings`` names (built on first use); ``settings`` (default: loaded
    from the environment on first use) gives ``[core] fernet_key``.
    """

    def __init__(self, metastore: Metastore | None = None, settings: Settings | None = None) -> None:
        self._metastore = metastore
        self._settings = settings
        self._fernet: MultiFernet | None = None
        self._missing_table = False

    # -- plumbing ---------------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from zonda.config import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def metastore(self) -> Metastore:
        if self._metastore is None:
            from zonda.metastore.db import Metastore

            self._metastore = Metastore.from_settings(self.settings)
        return self._metastore

    @property
    def redacted_url(self) -> str:
        if self._metastore is not None:
            return self._metastore.redacted_url
        from zonda.metastore.engine import redact_url

        return redact_url(self.settings.sql_alchemy_conn)

    def fernet(self, *, create: bool = False) -> MultiFernet:
        """The key(s) of ``[core] fernet_key``; ``create``: make and keep one in ``zonda.toml`` if there is none
        (storing a secret), see :mod:`zonda.fernet_bootstrap`."""
        if self._fernet is None:
            from zonda.crypto import get_fernet

            self._fernet = get_fernet(self.settings, create=create)
        return self._fernet

    def describe(self, conn_id: str) -> str:
        text = f"metastore {self.redacted_url}"
        if self._missing_table:
            text += " (not initialized: run `zonda db init`)"
        return text

    # -- reading ----------------------------------------------------------------------------------------

    def _stored_row(self, column: Any, value: str) -> Row[Any] | None:
        """The row of ``column``'s table whose ``column`` is ``value``, or None when there is none or the
        metastore has no such table yet (remembered for :meth:`describe`): a lookup that misses lets the next
        secrets backend answer instead of failing on a metastore not yet initialized."""
        from sqlalchemy import inspect, select
        from sqlalchemy.exc import DBAPIError

        with self.metastore.engine.connect() as db:
            try:
                return db.execute(select(column.table).where(column == value)).first()
            except DBAPIError:
                if inspect(db).has_table(column.table.name):
                    raise
                self._missing_table = True
                return None

    def get_connection(self, conn_id: str) -> Connection | None:
        from zonda.metastore.tables import connection as table

        row = self._stored_row(table.c.conn_id, conn_id)
        return None if row is None else self.to_connection(row)

    def rows(self) -> list[Row[Any]]:
        """Every stored row, ordered by conn_id, as stored (secrets still encrypted)."""
        from sqlalchemy import select

        from zonda.metastore.tables import connection as table

        with self.metastore.engine.connect() as db:
            return list(db.execute(select(table).order_by(table.c.conn_id)))

    def list_connections(self) -> list[Connection]:
        return [self.to_connection(row) for row in self.rows()]

    def to_connection(self, row: Row[Any], *, password: bool = True, extra: bool = True) -> Connection:
        """The decrypted connection of a stored row; ``password=False`` / ``extra=False`` skip (and leave out)
        the password / the extras, so a listing need not decrypt what it will not show."""
        from zonda.connection import Connection
        from zonda.crypto import FernetKeyError, decrypt

        conn_id = row.conn_id
        secret = row.password if password else None
        extras = row.extra if extra else None
        try:
            if secret is not None and row.is_encrypted:
                secret = decrypt(self.fernet(), secret, what=f"the password of connection {conn_id!r}")
            if extras and row.is_extra_encrypted:
                extras = decrypt(self.fernet(), extras, what=f"the extras of connection {conn_id!r}")
        except FernetKeyError as exc:
            if conn_id in str(exc):
                raise
            raise FernetKeyError(f"cannot read connection {conn_id!r}: {exc}") from None
        return Connection(
            conn_id=conn_id,
            conn_type=row.conn_type,
            host=row.host,
            login=row.login,
            password=secret,
            schema=row.schema,
            port=row.port,
            extra=json.loads(extras) if extras else {},
            description=row.description,
        )

    # -- variables --------------------------------------------------------------------------------------

    def get_variable(self, key: str) -> str | None:
        """The decrypted value of variable ``key``, or None when the metastore has none (or no table yet)."""
        from zonda.metastore.tables import variable as table

        row = self._stored_row(table.c.key, key)
        return None if row is None else self.variable_value(row)

    def variable_rows(self) -> list[Row[Any]]:
        """Every stored variable, ordered by key, as stored (values still encrypted)."""
        from sqlalchemy import select

        from zonda.metastore.tables import variable as table

        with self.metastore.engine.connect() as db:
            return list(db.execute(select(table).order_by(table.c.key)))

    def variable_value(self, row: Row[Any]) -> str | None:
        """The decrypted value of a stored variable row."""
        from zonda.crypto import decrypt

        if row.val is None or not row.is_encrypted:
            return row.val
        return decrypt(self.fernet(), row.val, what=f"the value of variable {row.key!r}")

    def save_variable(self, key: str, value: str, *, description: str | None = None) -> bool:
        """Store variable ``key`` (its value encrypted, a key made on first need), replacing any stored one.
        Returns True if it replaced an existing row."""
        return self.save_variables([(key, value, description)])[0] > 0

    def save_variables(self, items: list[tuple[str, str, str | None]]) -> tuple[int, int]:
        """Store many variables in one transaction: all or none. Returns (replaced, added)."""
        from sqlalchemy import insert, select, update

        from zonda.crypto import encrypt
        from zonda.identifiers import validate_variable_key
        from zonda.metastore.tables import variable as table

        for key, value, _ in items:
            validate_variable_key(key)
            if not isinstance(value, str):
                raise ZondaException(f"the value of variable {key!r} must be a string, got {type(value).__name__}")
        fernet = self.fernet(create=True) if items else None
        replaced = added = 0
        with self.metastore.engine.begin() as db:
            self._require_variable_table(db)
            for key, value, description in items:
                values = {"val": encrypt(fernet, value), "is_encrypted": True, "description": description}
                existing = db.execute(select(table.c.id).where(table.c.key == key)).scalar()
                if existing is None:
                    db.execute(insert(table).values(key=key, **values))
                    added += 1
                else:
                    db.execute(update(table).where(table.c.id == existing).values(**values))
                    replaced += 1
        return replaced, added

    def delete_variable(self, key: str) -> bool:
        """Delete variable ``key``; False when the metastore had none."""
        from sqlalchemy import delete

        from zonda.metastore.tables import variable as table

        with self.metastore.engine.begin() as db:
            self._require_variable_table(db)
            return bool(db.execute(delete(table).where(table.c.key == key)).rowcount)

    def _require_variable_table(self, db: Any) -> None:
        """A clear error, before any write, when the metastore has no ``variable`` table yet."""
        from sqlalchemy import inspect

        from zonda.exceptions import MetastoreError

        if not inspect(db).has_table("variable"):
            raise MetastoreError(
                f"the metastore {self.redacted_url} has no variable table; run `zonda db migrate` (or `zonda db "
                "init` for a new one)"
            )

    def rotate_variables(self) -> int:
        """Re-encrypt every stored variable with the first key of ``[core] fernet_key`` (plain ones get
        encrypted). One transaction, as :meth:`rotate_fernet_key`. Returns the number of rows changed."""
        from sqlalchemy import select, update

        from zonda.crypto import encrypt, rotate
        from zonda.metastore.tables import variable as table

        fernet = self.fernet()
        changed = 0
        with self.metastore.engine.begin() as db:
            for row in db.execute(select(table)).all():
                if row.val is None:
                    continue
                what = f"the value of variable {row.key!r}"
                val = rotate(fernet, row.val, what=what) if row.is_encrypted else encrypt(fernet, row.val)
                db.execute(update(table).where(table.c.id == row.id).values(val=val, is_encrypted=True))
                changed += 1
        return changed

    # -- writing ----------------------------------------------------------------------------------------

    def _values(self, conn: Connection) -> dict[str, Any]:
        from zonda.crypto import encrypt

        if conn.password is None and not conn.extra:
            password = extra = None
        else:
            fernet = self.fernet(create=True)
            password = None if conn.password is None else encrypt(fernet, conn.password)
            extra = encrypt(fernet, json.dumps(conn.extra)) if conn.extra else None
        return {
            "conn_type": conn.conn_type,
            "description": conn.description,
            "host": conn.host,
            "schema": conn.schema,
            "login": conn.login,
            "password": password,
            "port": conn.port,
            "extra": extra,
            "is_encrypted": password is not None,
            "is_extra_encrypted": extra is not None,
        }

    def save(self, conn: Connection, *, overwrite: bool = False) -> bool:
        """Store ``conn`` (encrypting its password and extras). Returns True if it replaced an existing row;
        raises :class:`ConnectionExists` for an existing id unless ``overwrite``."""
        from sqlalchemy import insert, select, update

        from zonda.identifiers import validate_conn_id
        from zonda.metastore.tables import connection as table

        if not conn.conn_id:
            raise ZondaException("a connection needs a conn_id to be stored")
        validate_conn_id(conn.conn_id)
        if not conn.conn_type:
            raise ZondaException(f"connection {conn.conn_id!r} needs a conn type (e.g. postgres, http)")
        values = self._values(conn)
        with self.metastore.engine.begin() as db:
            existing = db.execute(select(table.c.id).where(table.c.conn_id == conn.conn_id)).scalar()
            if existing is None:
                db.execute(insert(table).values(conn_id=conn.conn_id, **values))
                return False
            if not overwrite:
                raise ConnectionExists(
                    f"connection {conn.conn_id!r} already exists in the metastore; delete it first with "
                    f"`zonda connections delete {conn.conn_id}`"
                )
            db.execute(update(table).where(table.c.id == existing).values(**values))
            return True

    def delete(self, conn_id: str) -> None:
        from sqlalchemy import delete

        from zonda.metastore.tables import connection as table

        with self.metastore.engine.begin() as db:
            deleted = db.execute(delete(table).where(table.c.conn_id == conn_id)).rowcount
        if not deleted:
            raise ConnectionNotFound(f"no connection {conn_id!r} in the {self.describe(conn_id)}")

    def rotate_fernet_key(self) -> int:
        """Re-encrypt every stored password and extra with the first key of ``[core] fernet_key`` (values
        encrypted with any listed key are read; plain ones get encrypted). Returns the number of rows changed.
        One transaction: a value no key decrypts stops the rotation and changes nothing."""
        from sqlalchemy import select, update

        from zonda.crypto import encrypt, rotate
        from zonda.metastore.tables import connection as table

        fernet = self.fernet()
        changed = 0
        with self.metastore.engine.begin() as db:
            for row in db.execute(select(table)).all():
                values: dict[str, Any] = {}
                if row.password is not None:
                    what = f"the password of connection {row.conn_id!r}"
                    values["password"] = (
                        rotate(fernet, row.password, what=what) if row.is_encrypted else encrypt(fernet, row.password)
                    )
                    values["is_encrypted"] = True
                if row.extra:
                    what = f"the extras of connection {row.conn_id!r}"
                    values["extra"] = (
                        rotate(fernet, row.extra, what=what) if row.is_extra_encrypted else encrypt(fernet, row.extra)
                    )
                    values["is_extra_encrypted"] = True
                if values:
                    db.execute(update(table).where(table.c.id == row.id).values(**values))
                    changed += 1
        return changed
