"""``PostgresHook``: PostgreSQL through psycopg 3.

The connection (conn type ``postgres``) gives host, port, database (``schema``), login and password; the extras
``sslmode``, ``sslrootcert``, ``options``, ``application_name`` and ``connect_timeout`` are passed to libpq.

SQL parameters are always bound by psycopg (``%s`` / ``%(name)s`` placeholders), never formatted into the text.
A failure to connect raises one :class:`~zonda.exceptions.ZondaException` naming host, port, database and the
problem; the password never appears in it.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.hooks.base import BaseHook

if TYPE_CHECKING:
    import psycopg

    from zonda.connection import Connection

log = logging.getLogger("zonda.providers.postgres")

#: Connection extras handed to libpq as they are.
LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "options", "application_name", "connect_timeout")
DEFAULT_PORT = 5432
_COPY_FROM_STDIN = re.compile(r"\bFROM\s+STDIN\b", re.IGNORECASE)
_COPY_CHUNK = 1024 * 1024


def fetch_all_handler(cursor: Any) -> list[tuple[Any, ...]] | None:
    """Airflow's default handler: every row of the last result, or None for a statement without one."""
    if cursor.description is None:
        return None
    return cursor.fetchall()


def fetch_one_handler(cursor: Any) -> tuple[Any, ...] | None:
    """The first row of the last result, or None."""
    if cursor.description is None:
        return None
    return cursor.fetchone()


def split_sql_statements(sql: str) -> list[str]:
    """Split ``sql`` on ``;`` outside quotes, identifiers, dollar-quoted strings and comments.

    Empty statements (and trailing ``;``) are dropped; statements keep their text (without the ``;``)."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            current.append(sql[i : end + 1])
            i = end + 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            current.append(sql[i:end])
            i = end
        elif ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            current.append(sql[i:end])
            i = end
        elif ch == "$":
            match = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])
            if match:
                tag = match.group(0)
                end = sql.find(tag, i + len(tag))
                end = n if end == -1 else end + len(tag)
                current.append(sql[i:end])
                i = end
            else:
                current.append(ch)
                i += 1
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    text = re.sub(r"--[^\n]*", "", statement)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return bool(text.strip())


def _table_identifier(table: str) -> Any:
    """``schema.table`` (or ``table``) as a quoted psycopg identifier."""
    from psycopg import sql

    if isinstance(table, sql.Composable):
        return table
    return sql.Identifier(*table.split("."))


class PostgresHook(BaseHook):
    """Talk to PostgreSQL. ``postgres_conn_id`` names the connection; ``database`` overrides its ``schema``.

    A ``connection`` object may be passed instead of an id (tests, ad-hoc use)."""

    conn_name_attr: ClassVar[str] = "postgres_conn_id"
    default_conn_name: ClassVar[str] = "postgres_default"
    conn_type: ClassVar[str] = "postgres"
    hook_name: ClassVar[str] = "Postgres"
    supports_autocommit: ClassVar[bool] = True

    def __init__(
        self,
        postgres_conn_id: str = default_conn_name,
        *,
        database: str | None = None,
        connection: Connection | None = None,
        **kwargs: Any,
    ) -> None:
        # Airflow also accepts ``schema=`` for the database and a generic ``conn_id=``.
        self.postgres_conn_id = kwargs.pop("conn_id", None) or postgres_conn_id
        self.database = database or kwargs.pop("schema", None)
        if kwargs:
            raise TypeError(f"PostgresHook got unexpected arguments: {', '.join(sorted(kwargs))}")
        self._connection = connection

    # -- connection ---------------------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.get_connection(self.postgres_conn_id)
        return self._connection

    def _conn_params(self) -> dict[str, Any]:
        conn = self.connection
        params: dict[str, Any] = {
            "host": conn.host or "localhost",
            "port": conn.port or DEFAULT_PORT,
            "dbname": self.database or conn.schema or "postgres",
        }
        if conn.login:
            params["user"] = conn.login
        if conn.password is not None:
            params["password"] = conn.password
        for key in LIBPQ_EXTRAS:
            value = conn.extra.get(key)
            if value is not None and value != "":
                params[key] = str(value) if key != "connect_timeout" else int(value)
        return params

    def _describe(self, params: Mapping[str, Any]) -> str:
        user = f" as user {params['user']!r}" if params.get("user") else ""
        return (
            f"PostgreSQL at {params['host']}:{params['port']}, database {params['dbname']!r}{user} "
            f"(connection {self.connection.conn_id or self.postgres_conn_id!r})"
        )

    def _connect_error(self, exc: Exception, params: Mapping[str, Any]) -> ZondaException:
        problem = _connect_problem(str(exc))
        password = params.get("password")
        if password:
            problem = problem.replace(str(password), "***")
        try:
            from zonda.masking import redact

            problem = redact(problem)
        except Exception:  # pragma: no cover - masking must never hide the real error
            pass
        return ZondaException(f"cannot connect to {self._describe(params)}: {problem}")

    def get_conn(self) -> psycopg.Connection:
        """A new psycopg connection (not autocommit). The caller closes it (``with hook.get_conn() as conn``)."""
        import psycopg

        params = self._conn_params()
        try:
            return psycopg.connect(**params)
        except psycopg.OperationalError as exc:
            raise self._connect_error(exc, params) from None

    def get_uri(self) -> str:
        """A ``postgresql://`` URI for this connection (with the password; never log it)."""
        return self._sqlalchemy_url("postgresql").render_as_string(hide_password=False)

    def _sqlalchemy_url(self, drivername: str) -> Any:
        from sqlalchemy.engine import URL

        params = self._conn_params()
        query = {key: str(params[key]) for key in LIBPQ_EXTRAS if key in params}
        return URL.create(
            drivername,
            username=params.get("user"),
            password=params.get("password"),
            host=params["host"],
            port=params["port"],
            database=params["dbname"],
            query=query,
        )

    def get_sqlalchemy_engine(self, engine_kwargs: Mapping[str, Any] | None = None) -> Any:
        """A SQLAlchemy engine on the psycopg 3 driver (``postgresql+psycopg``)."""
        from sqlalchemy import create_engine

        return create_engine(self._sqlalchemy_url("postgresql+psycopg"), **dict(engine_kwargs or {}))

    # -- running SQL --------------------------------------------------------------------------------------

    def run(
        self,
        sql: str | Iterable[str],
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        autocommit: bool = False,
        handler: Callable[[Any], Any] | None = None,
        split_statements: bool = False,
        return_last: bool = True,
    ) -> Any:
        """Run one statement or several in one transaction (committed at the end, rolled back on any error).

        ``parameters`` are bound to every statement by psycopg. With a ``handler``, returns its result for the
        last statement (``sql`` a string and ``return_last``) or a list with one result per statement; without
        one, returns None. ``autocommit=True`` commits each statement on its own."""
        if isinstance(sql, str):
            statements = split_sql_statements(sql) if split_statements else [sql]
            scalar = return_last
        else:
            statements = list(sql)
            if split_statements:
                statements = [part for statement in statements for part in split_sql_statements(statement)]
            scalar = False
        if not statements:
            raise ZondaException("no SQL to run: the statement list is empty")
        results: list[Any] = []
        with closing(self.get_conn()) as conn:
            conn.autocommit = autocommit
            try:
                with conn.cursor() as cursor:
                    for statement in statements:
                        log.info("Running statement: %s, parameters: %s", statement, parameters)
                        cursor.execute(statement, parameters)
                        if handler is not None:
                            results.append(handler(cursor))
                if not autocommit:
                    conn.commit()
            except BaseException:
                if not autocommit:
                    conn.rollback()
                raise
        if handler is None:
            return None
        return results[-1] if scalar else results

    def get_records(self, sql: str | Iterable[str], parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """Every row of ``sql`` (of the last statement of a list) as tuples."""
        if isinstance(sql, str):
            return self.run(sql, parameters, handler=fetch_all_handler)
        return (self.run(sql, parameters, handler=fetch_all_handler) or [None])[-1]

    def get_first(self, sql: str | Iterable[str], parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """The first row of ``sql`` as a tuple, or None."""
        if isinstance(sql, str):
            return self.run(sql, parameters, handler=fetch_one_handler)
        return (self.run(sql, parameters, handler=fetch_one_handler) or [None])[-1]

    def get_pandas_df(self, sql: str, parameters: Any = None, **kwargs: Any) -> Any:
        """``sql``'s result as a pandas DataFrame (pandas must be installed)."""
        import pandas as pd

        with closing(self.get_conn()) as conn, conn.cursor() as cursor:
            cursor.execute(sql, parameters)
            columns = [col.name for col in cursor.description or ()]
            return pd.DataFrame(cursor.fetchall(), columns=columns, **kwargs)

    # -- writing rows -------------------------------------------------------------------------------------

    def insert_rows(
        self,
        table: str,
        rows: Iterable[Sequence[Any]],
        target_fields: Sequence[str] | None = None,
        commit_every: int = 1000,
        replace: bool = False,
        replace_index: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> int:
        """Insert ``rows`` into ``table``, committing every ``commit_every`` rows; returns the number inserted.

        ``replace=True`` upserts: ``INSERT ... ON CONFLICT (replace_index) DO UPDATE SET`` every other target
        field (``replace_index`` names the unique column(s); it and ``target_fields`` are required then)."""
        from psycopg import sql as psql

        commit_every = max(0, commit_every)  # everything in one transaction
        fields = list(target_fields) if target_fields else None
        iterator = iter(rows)
        first = next(iterator, None)
        if first is None:
            return 0
        width = len(first)
        placeholders = psql.SQL(", ").join(psql.Placeholder() * width)
        statement = psql.SQL("INSERT INTO {} ").format(_table_identifier(table))
        if fields:
            if len(fields) != width:
                raise ZondaException(
                    f"insert_rows into {table}: {len(fields)} target fields but rows have {width} values"
                )
            statement += psql.SQL("({}) ").format(psql.SQL(", ").join(map(psql.Identifier, fields)))
        statement += psql.SQL("VALUES ({})").format(placeholders)
        if replace:
            if not fields:
                raise ZondaException("insert_rows with replace=True needs target_fields")
            if not replace_index:
                raise ZondaException("insert_rows with replace=True needs replace_index (the unique column(s))")
            index = [replace_index] if isinstance(replace_index, str) else list(replace_index)
            updates = [f for f in fields if f not in index]
            statement += psql.SQL(" ON CONFLICT ({}) ").format(psql.SQL(", ").join(map(psql.Identifier, index)))
            if updates:
                statement += psql.SQL("DO UPDATE SET {}").format(
                    psql.SQL(", ").join(psql.SQL("{0} = excluded.{0}").format(psql.Identifier(f)) for f in updates)
                )
            else:
                statement += psql.SQL("DO NOTHING")
        all_rows = itertools.chain([first], iterator)
        total = 0
        with closing(self.get_conn()) as conn:
            try:
                with conn.cursor() as cursor:
                    while True:
                        batch = list(itertools.islice(all_rows, commit_every)) if commit_every else list(all_rows)
                        if not batch:
                            break
                        cursor.executemany(statement, batch)
                        conn.commit()
                        total += len(batch)
                        log.info("Loaded %s rows into %s so far", total, table)
                        if not commit_every:
                            break
            except BaseException:
                conn.rollback()
                raise
        log.info("Done loading. Loaded a total of %s rows into %s", total, table)
        return total

    def write_batch(
        self, batch: Sequence[Sequence[Any]], table: str, target_fields: Sequence[str] | None = None
    ) -> int:
        """Insert one batch (the transfer protocol's destination side)."""
        return self.insert_rows(table, batch, target_fields=target_fields, commit_every=0)

    # -- COPY ---------------------------------------------------------------------------------------------

    def copy_expert(self, sql: str, filename: str | Path) -> None:
        """Run a ``COPY ... FROM STDIN`` (reading ``filename``) or ``COPY ... TO STDOUT`` (writing it)."""
        path = Path(filename)
        with closing(self.get_conn()) as conn:
            try:
                with conn.cursor() as cursor:
                    if _COPY_FROM_STDIN.search(sql):
                        with path.open("rb") as source, cursor.copy(sql) as copy:
                            while chunk := source.read(_COPY_CHUNK):
                                copy.write(chunk)
                    else:
                        with path.open("wb") as target, cursor.copy(sql) as copy:
                            for data in copy:
                                target.write(data)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def bulk_load(self, table: str, tmp_file: str | Path) -> None:
        """Load a tab-delimited file (COPY text format) into ``table``."""
        from psycopg import sql as psql

        statement = psql.SQL("COPY {} FROM STDIN").format(_table_identifier(table))
        self.copy_expert(statement.as_string(None), tmp_file)

    def bulk_dump(self, table: str, tmp_file: str | Path) -> None:
        """Dump ``table`` into a tab-delimited file (COPY text format)."""
        from psycopg import sql as psql

        statement = psql.SQL("COPY {} TO STDOUT").format(_table_identifier(table))
        self.copy_expert(statement.as_string(None), tmp_file)

    # -- streaming ----------------------------------------------------------------------------------------

    def iter_batches(
        self,
        sql: str,
        batch_size: int = 10000,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Yield the rows of ``sql`` in lists of at most ``batch_size``, read through a named server-side
        cursor: memory holds one batch whatever the table size. The transfer operators' source protocol."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ZondaException(f"iter_batches: batch_size must be a positive integer, got {batch_size!r}")
        with closing(self.get_conn()) as conn:
            try:
                with conn.cursor(name=f"zonda_{uuid.uuid4().hex[:16]}") as cursor:
                    cursor.itersize = batch_size
                    cursor.execute(sql, parameters)
                    while True:
                        rows = cursor.fetchmany(batch_size)
                        if not rows:
                            break
                        yield rows
            finally:
                conn.rollback()  # read only: end the transaction the cursor lived in

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error, then closed."""
        with closing(self.get_conn()) as conn:
            try:
                yield conn
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def test_connection(self) -> tuple[bool, str]:
        try:
            row = self.get_first("SELECT 1")
        except Exception as exc:
            return False, str(exc)
        if row and row[0] == 1:
            return True, "Connection successfully tested"
        return False, f"SELECT 1 returned {row!r}"


def _connect_problem(message: str) -> str:
    """The useful part of a libpq connection error, on one line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "connection failed"
    text = lines[0]
    # 'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    if " failed: " in text:
        text = text.rsplit(" failed: ", 1)[1]
    text = re.sub(r"^FATAL:\s*", "", text).strip()
    lowered = text.lower()
    if "connection refused" in lowered:
        return "connection refused: is the server running and accepting TCP connections on that port?"
    if "password authentication failed" in lowered:
        return f"{text}: check the connection's login and password"
    if "timeout expired" in lowered or "timed out" in lowered:
        return f"{text}: the host did not answer (check host, port, firewall or connect_timeout)"
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return f"{text}: check the host name"
    return text
