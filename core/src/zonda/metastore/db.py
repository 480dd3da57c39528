"""The :class:`Metastore`: one database, its engine, sessions and schema life cycle.

Nothing here is global: a process (or a test) builds a ``Metastore`` from a URL or from settings and passes
it along. Alembic takes about half a second to import, so only :meth:`~Metastore.init`,
:meth:`~Metastore.migrate`, :meth:`~Metastore.reset` and :meth:`~Metastore.check` load it; the start-up path
every command takes, :meth:`~Metastore.ensure_ready`, reads ``alembic_version`` with a plain query. Likewise
``sqlalchemy.orm`` (a few hundred milliseconds with the models) loads only when a session is asked for: the
run path uses the Core tables of :mod:`zonda.metastore.tables`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from zonda.exceptions import MetastoreError
from zonda.metastore import HEAD_REVISION
from zonda.metastore.engine import make_engine, redact_url

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import Session, sessionmaker

    from zonda.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


class Metastore:
    """Access to one metastore database.

    ``session()`` is the unit of work: it commits when the block ends and rolls back when it raises. Objects
    stay usable after the commit (``expire_on_commit=False``), so a caller can return what it loaded.
    """

    def __init__(self, url: str, *, pool_size: int | None = None, echo: bool = False, pre_ping: bool = True) -> None:
        self.url = url
        self._pool_size = pool_size
        self._echo = echo
        self._pre_ping = pre_ping

    @classmethod
    def from_settings(cls, settings: Settings, *, pre_ping: bool = True) -> Metastore:
        """The metastore ``[database] sql_alchemy_conn`` points at. ``pre_ping=False`` skips the liveness
        round trip on each connection checkout, for a caller that retries a transaction whose connection
        turned out dead (the scheduler)."""
        url = settings.sql_alchemy_conn
        pool_size = None if url.startswith("sqlite") else int(settings.get("database", "sql_alchemy_pool_size"))
        return cls(url, pool_size=pool_size, pre_ping=pre_ping)

    @classmethod
    def existing(cls, settings: Settings) -> Metastore | None:
        """The configured metastore when it exists and is initialised; None otherwise. Never creates one (a
        SQLite file that is not there stays absent): for readers such as ``list-import-errors`` and masking."""
        url = settings.sql_alchemy_conn
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).expanduser().exists():
            return None
        metastore = cls.from_settings(settings)
        if metastore.current_revision() is None:
            metastore.dispose()
            return None  # not initialised yet (e.g. only `zonda db check` ran)
        return metastore

    @classmethod
    def open(cls, settings: Settings, *, pre_ping: bool = True) -> Metastore:
        """The configured metastore, ready to use: a fresh SQLite file is initialised on first use (so
        `zonda standalone` is one command); any other database must be migrated with `zonda db init|migrate`."""
        metastore = cls.from_settings(settings, pre_ping=pre_ping)
        metastore.ensure_ready(auto_init=metastore.url.startswith("sqlite"))
        return metastore

    @classmethod
    def over_engine(cls, engine: Engine) -> Metastore:
        """A Metastore using an engine made elsewhere (the web server's), so operations that take a Metastore
        share its connection pool instead of opening a second one."""
        metastore = cls(engine.url.render_as_string(hide_password=False))
        metastore.__dict__["engine"] = engine  # fills the cached property
        return metastore

    @property
    def supports_row_locks(self) -> bool:
        """Whether ``SELECT ... FOR UPDATE SKIP LOCKED`` coordinates several schedulers/triggerers here."""
        return self.engine.dialect.name in ("postgresql", "mysql", "mariadb")

    def __repr__(self) -> str:
        return f"Metastore({self.redacted_url!r})"

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.url, pool_size=self._pool_size, echo=self._echo, pre_ping=self._pre_ping)

    @cached_property
    def sessionmaker(self) -> sessionmaker[Session]:
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(bind=self.engine, expire_on_commit=False)

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection (before a fork, or when done with this metastore)."""
        if "engine" in self.__dict__:
            self.engine.dispose()

    # -- schema state, without Alembic -----------------------------------------------------------------------

    def current_revision(self) -> str | None:
        """The revision in ``alembic_version``, or None when the table is missing or empty."""
        with self.engine.connect() as conn:
            return _read_revision(conn)

    def ensure_ready(self, auto_init: bool = False) -> None:
        """Make sure the schema is the one this Zonda needs, fast; the start-up check of every command.

        An empty database is initialized when ``auto_init`` (the default SQLite setup does this so that a
        first ``zonda standalone`` just works). Any other mismatch raises :class:`MetastoreError` saying what
        to run.
        """
        with self.engine.connect() as conn:
            revision = _read_revision(conn)
            has_zonda_tables = revision is None and _has_zonda_tables(conn)
        if revision == HEAD_REVISION:
            return
        if revision is None:
            if has_zonda_tables:
                raise MetastoreError(
                    f"the metastore at {self.redacted_url} has Zonda tables but no {VERSION_TABLE} table, so "
                    "its schema version is unknown; run `zonda db reset` to recreate it (deleting its data)"
                )
            if auto_init:
                self.init()
                return
            raise MetastoreError(f"the metastore at {self.redacted_url} is not initialized; run `zonda db init`")
        if _is_known_revision(revision):
            raise MetastoreError(
                f"the metastore at {self.redacted_url} has schema revision {revision} but this Zonda needs "
                f"{HEAD_REVISION}; run `zonda db migrate`"
            )
        raise MetastoreError(
            f"the metastore at {self.redacted_url} has schema revision {revision}, which this Zonda does not "
            f"know (it needs {HEAD_REVISION}): it was migrated by a newer Zonda; upgrade Zonda"
        )

    # -- schema life cycle, with Alembic ---------------------------------------------------------------------

    def alembic_config(self, connection: Connection | None = None) -> Config:
        """An Alembic config for the packaged migrations, bound to ``connection`` when given.

        Developers add a migration with
        ``alembic.command.revision(store.alembic_config(conn), message=..., autogenerate=True)``.
        """
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        """The head of the packaged migration scripts (equals :data:`HEAD_REVISION` in a correct build)."""
        from alembic.script import ScriptDirectory

        heads = ScriptDirectory.from_config(self.alembic_config()).get_heads()
        if len(heads) != 1:
            raise MetastoreError(f"the packaged migrations have {len(heads)} heads ({heads}); expected one")
        return heads[0]

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default: the newest). On an empty database this creates it."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(self.alembic_config(conn), revision)

    def init(self) -> None:
        """Create the schema up to the head revision; a no-op on an up-to-date database."""
        self.migrate("head")

    def reset(self) -> None:
        """Drop every Zonda table (and ``alembic_version``), then initialize again. All data is lost."""
        from zonda.metastore.tables import metadata

        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        self.init()

    def check(self) -> dict[str, Any]:
        """Reachability and schema revision, as data: ``url``, ``reachable``, ``current_revision``,
        ``head_revision``, ``ok`` and ``error`` (None, or a message saying what to run)."""
        result: dict[str, Any] = {
            "url": self.redacted_url,
            "reachable": False,
            "current_revision": None,
            "head_revision": HEAD_REVISION,
            "ok": False,
            "error": None,
        }
        head = self.head_revision()
        result["head_revision"] = head
        try:
            with self.engine.connect() as conn:
                current = _read_revision(conn)
        except MetastoreError as exc:
            result["error"] = str(exc)
            return result
        result["reachable"] = True
        result["current_revision"] = current
        if head != HEAD_REVISION:
            result["error"] = f"this Zonda build is inconsistent: HEAD_REVISION={HEAD_REVISION}, migrations head={head}"
        elif current is None:
            result["error"] = "the metastore is not initialized; run `zonda db init`"
        elif current != head:
            result["error"] = f"schema revision {current} is not the head {head}; run `zonda db migrate`"
        else:
            result["ok"] = True
        return result


def _read_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise MetastoreError(f"{VERSION_TABLE} has several revisions ({', '.join(sorted(rows))}); expected one")
    return rows[0] if rows else None


def _has_zonda_tables(conn: Connection) -> bool:
    from zonda.metastore.tables import metadata

    return bool(set(inspect(conn).get_table_names()) & set(metadata.tables))


def _is_known_revision(revision: str) -> bool:
    # Migration files are named "<revision>_<slug>.py"; a glob is far cheaper than loading Alembic.
    return any((MIGRATIONS_DIR / "versions").glob(f"{revision}_*.py"))
