"""Engine settings per backend, URL handling, and errors for unreachable servers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text

from zonda.exceptions import MetastoreError
from zonda.metastore.db import Metastore
from zonda.metastore.engine import make_engine, normalize_url, redact_url


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://zonda:s3cret@db:5432/zonda", "postgresql://zonda:***@db:5432/zonda"),
        ("mysql+pymysql://root:p%40ss@127.0.0.1/zonda", "mysql+pymysql://root:***@127.0.0.1/zonda"),
        ("postgresql://zonda@db/zonda", "postgresql://zonda@db/zonda"),
        ("sqlite:////tmp/zonda.db", "sqlite:////tmp/zonda.db"),
        ("not a url://user:pw@host", "not a url://user:***@host"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_normalize_url_picks_zonda_drivers() -> None:
    assert normalize_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg2://u@h/d").drivername == "postgresql+psycopg2"
    mysql = normalize_url("mysql://u@h/d")
    assert (mysql.drivername, mysql.query["charset"]) == ("mysql+pymysql", "utf8mb4")
    assert normalize_url("mariadb://u@h/d").drivername == "mariadb+pymysql"
    assert normalize_url("mysql://u@h/d?charset=latin1").query["charset"] == "latin1"


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    db = tmp_path / "new" / "folder" / "zonda.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert db.parent.is_dir()
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 30000}


@pytest.mark.postgres
def test_postgres_engine_uses_psycopg_and_pre_ping(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=3)
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping
        assert engine.pool.size() == 3
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_mysql_engine_uses_pymysql_and_utf8mb4(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    try:
        assert engine.dialect.driver == "pymysql"
        assert engine.pool._pre_ping
        with engine.connect() as conn:
            assert conn.execute(text("SELECT @@character_set_connection")).scalar() == "utf8mb4"
    finally:
        engine.dispose()


def test_unreachable_postgres_gives_one_line_without_the_password() -> None:
    url = f"postgresql://zonda:hunter2-secret@127.0.0.1:{_closed_port()}/zonda"
    store = Metastore(url)
    with pytest.raises(MetastoreError) as info:
        store.ensure_ready(auto_init=True)
    message = str(info.value)
    assert "hunter2-secret" not in message
    assert "\n" not in message
    assert message.startswith(f"cannot connect to the metastore at {redact_url(url)}: ")
    assert "zonda:***@127.0.0.1" in message
    assert "refused" in message.lower()
    assert message.endswith("check [database] sql_alchemy_conn (or ZONDA__DATABASE__SQL_ALCHEMY_CONN)")
    result = store.check()
    assert result["reachable"] is False and result["ok"] is False
    assert "hunter2-secret" not in result["error"]
    with pytest.raises(MetastoreError, match="cannot connect"):
        store.init()


def test_unreachable_mysql_gives_one_line_without_the_password() -> None:
    url = f"mysql://root:hunter2-secret@127.0.0.1:{_closed_port()}/zonda"
    with pytest.raises(MetastoreError) as info:
        Metastore(url).current_revision()
    message = str(info.value)
    assert "hunter2-secret" not in message and "\n" not in message
    assert f"at {redact_url(url)}: Can't connect to MySQL server" in message


def test_invalid_url() -> None:
    with pytest.raises(MetastoreError, match="invalid metastore URL"):
        make_engine("definitely not a url")
