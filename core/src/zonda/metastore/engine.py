"""Engines for the three supported metastores, tuned per database, with errors users can act on.

``postgresql://`` means psycopg 3 and ``mysql://`` / ``mariadb://`` mean PyMySQL, so users write the URL they
know and get the driver Zonda installs. A failed connection becomes a ``MetastoreError`` of one
line naming the (redacted) URL and the setting to fix, never a driver traceback or the password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import NoSuchModuleError

from zonda.exceptions import MetastoreError

#: Driver used when a URL names only the database.
DEFAULT_DRIVERS: dict[str, str] = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}

SQLITE_BUSY_TIMEOUT_S = 30
SETTING_HINT = "check [database] sql_alchemy_conn (or ZONDA__DATABASE__SQL_ALCHEMY_CONN)"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pick Zonda's driver when none is given (``utf8mb4`` for MySQL/MariaDB too)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError, with the raw URL in its text
        raise MetastoreError(f"invalid metastore URL {redact_url(str(url))!r}: {SETTING_HINT}") from exc
    if parsed.drivername in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    try:
        parsed.get_dialect()  # imports SQLAlchemy's dialect module only, not the driver
    except NoSuchModuleError:
        raise MetastoreError(
            f"unknown database {parsed.drivername!r} in the metastore URL {redact_url(parsed)!r}: use "
            f"postgresql://, mysql://, mariadb:// or sqlite:///; {SETTING_HINT}"
        ) from None
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def redact_url(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***`` (safe for logs and error messages)."""
    try:
        parsed = make_url(url)
    except Exception:
        text = str(url)
        # Unparseable: hide anything between "://user:" and "@" by hand.
        scheme, sep, rest = text.partition("://")
        if sep and "@" in rest:
            creds, _, host = rest.rpartition("@")
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}" if ":" in creds else text
        return text
    return parsed.render_as_string(hide_password=True)


def _short_reason(exc: BaseException, password: str | None) -> str:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig.args, tuple) and len(orig.args) == 2 and isinstance(orig.args[0], int):
        text = str(orig.args[1])  # PyMySQL: (2003, "Can't connect ...")
    else:
        text = str(orig)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    if password:
        reason = reason.replace(password, "***")
    return reason


class MetastoreUnreachable(MetastoreError):
    """The metastore could not be connected to (stopped, restarting, unreachable, refusing us). A daemon treats
    it as an outage and retries (:mod:`zonda.metastore.retry`); a command reports its one line. ``reason``: the
    driver's own first line (password masked), for a log line that names the URL already."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def connection_error(url: str | URL, exc: BaseException) -> MetastoreUnreachable:
    """The one-line error for a metastore that cannot be reached (``url`` shown as the user wrote it)."""
    try:
        password = make_url(url).password
    except Exception:
        password = None
    reason = _short_reason(exc, password)
    return MetastoreUnreachable(
        f"cannot connect to the metastore at {redact_url(url)}: {reason}; {SETTING_HINT}", reason=reason
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    finally:
        cursor.close()


def make_engine(url: str | URL, *, pool_size: int | None = None, echo: bool = False, pre_ping: bool = True) -> Engine:
    """An engine for ``url`` with Zonda's per-database settings.

    SQLite: the parent folder is created; every connection gets WAL journaling, ``synchronous=NORMAL``,
    foreign keys on and a 30 s busy timeout. PostgreSQL and MySQL/MariaDB: ``pool_pre_ping`` so a restarted
    server costs one reconnect instead of an error (unless ``pre_ping`` is off: the caller then retries a
    transaction whose connection died, see :mod:`zonda.metastore.retry`), and ``pool_size`` when given.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo}
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            from zonda.private_files import create_private_file

            # Owner-only whatever the umask; SQLite gives its -wal, -shm and -journal files the database's mode.
            create_private_file(Path(database).expanduser())
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = pre_ping
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        if backend in ("mysql", "mariadb"):
            # MySQL closes idle connections after wait_timeout (8 h by default); recycle well before.
            kwargs["pool_recycle"] = 3600
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        extra = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(backend, backend)
        raise MetastoreError(
            f"the database driver for {redact_url(parsed)} is not installed ({exc}); "
            f"install it with: pip install 'zonda[{extra}]'"
        ) from exc
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)

    def _on_error(context: ExceptionContext) -> None:
        # Errors raised while opening a connection carry no Connection; statement errors do.
        if context.connection is None and not context.is_pre_ping:
            raise connection_error(url, context.original_exception) from context.original_exception

    event.listen(engine, "handle_error", _on_error)
    return engine
