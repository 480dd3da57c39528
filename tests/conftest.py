"""Fixtures shared by the whole suite: a temp ZONDA_HOME and fresh metastores on the three supported databases.

The database fixtures use the real local servers (PostgreSQL on 127.0.0.1:5432, MariaDB/MySQL on
127.0.0.1:3306) and create a uniquely named database per test, dropped afterwards. A server that is down makes
the test FAIL with the command to start it: a skipped database test is a test nobody runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from zonda.metastore.db import Metastore

POSTGRES_HOST = os.environ.get("ZONDA_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("ZONDA_TEST_POSTGRES_PORT", "5432"))
POSTGRES_USER = os.environ.get("ZONDA_TEST_POSTGRES_USER", "postgres")
MYSQL_HOST = os.environ.get("ZONDA_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("ZONDA_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("ZONDA_TEST_MYSQL_USER", "root")


def _database_name() -> str:
    return f"zonda_t_{uuid.uuid4().hex[:12]}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@pytest.fixture(autouse=True)
def _fresh_secrets_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CLI command run in-process (``main([...])``) sets the process's default connection and variable lookup,
    bound to that test's metastore; each test starts without one, as a new process would."""
    from zonda.hooks.base import BaseHook
    from zonda.variable import Variable

    monkeypatch.setattr(BaseHook, "default_lookup", None)
    monkeypatch.setattr(Variable, "default_lookup", None)


@pytest.fixture
def zonda_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ZONDA_HOME for this test, with every ``ZONDA__*`` override of the outer environment removed."""
    home = tmp_path / "zonda_home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith("ZONDA__"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ZONDA_HOME", str(home))
    return home


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite metastore URL in a fresh folder (the folder is created by the engine)."""
    return f"sqlite:///{tmp_path / 'metastore' / 'zonda.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite metastore migrated to the head once per session, by ``Metastore.init`` as any other. Copying the
    file takes a millisecond; running every migration again took about half a second per test."""
    from zonda.metastore.db import Metastore

    path = tmp_path_factory.mktemp("sqlite_template") / "zonda.db"
    store = Metastore(f"sqlite:///{path}")
    try:
        store.init()
    finally:
        store.dispose()
    return path


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, sqlite_template: Path) -> str:
    """The URL of a fresh SQLite metastore already at the head revision: a copy of :func:`sqlite_template`
    (``sqlite_url`` is for tests that need the empty database)."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True)
    shutil.copyfile(sqlite_template, path)
    return sqlite_url


def _postgres_admin():  # -> psycopg.Connection
    import psycopg

    try:
        return psycopg.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} as {POSTGRES_USER} "
            f"({_first_line(exc)}). Start it, e.g. `sudo pg_ctlcluster 15 main start` or "
            "`sudo service postgresql start` (or point ZONDA_TEST_POSTGRES_HOST/PORT/USER at a server).",
            pytrace=False,
        )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (dropped afterwards, even with open connections)."""
    name = _database_name()
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with _postgres_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mysql_admin():  # -> pymysql.Connection
    import pymysql

    try:
        return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, connect_timeout=5, autocommit=True)
    except pymysql.err.OperationalError as exc:
        pytest.fail(
            f"MariaDB/MySQL is not reachable at {MYSQL_HOST}:{MYSQL_PORT} as {MYSQL_USER} ({exc.args[-1]}). "
            "Start it, e.g. `sudo service mariadb start` (or point ZONDA_TEST_MYSQL_HOST/PORT/USER at a server).",
            pytrace=False,
        )


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database (utf8mb4) for this test, dropped afterwards."""
    name = _database_name()
    admin = _mysql_admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    try:
        yield f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
    finally:
        import pymysql

        admin = _mysql_admin()
        try:
            with admin.cursor() as cursor:
                # A connection left inside a transaction would hold a metadata lock and block the DROP.
                cursor.execute("SELECT id FROM information_schema.processlist WHERE db = %s", (name,))
                for (connection_id,) in cursor.fetchall():
                    with contextlib.suppress(pymysql.MySQLError):  # it may have ended meanwhile
                        cursor.execute(f"KILL {int(connection_id)}")
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def metastore_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database, once per supported backend (select with ``-m 'not mysql'``...)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def metastore(migrated_sqlite_url: str) -> Iterator[Metastore]:
    """A fresh, initialized SQLite metastore (for tests that need one database, not all three)."""
    from zonda.metastore.db import Metastore

    store = Metastore(migrated_sqlite_url)
    store.init()
    try:
        yield store
    finally:
        store.dispose()
