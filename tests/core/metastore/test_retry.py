"""Lock conflicts the database resolves by rolling back are recognised and retried; other errors are not.

The conflicts are real: two connections lock two rows in opposite orders (a deadlock on PostgreSQL and
MariaDB), or a second writer meets SQLite's write lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from zonda.metastore.engine import make_engine
from zonda.metastore.retry import is_transient, retry_transient

meta = MetaData()
rows = Table("retry_probe", meta, Column("id", Integer, primary_key=True), Column("n", Integer))


@pytest.fixture
def engine(metastore_url: str) -> Iterator[object]:
    eng = make_engine(metastore_url)
    meta.create_all(eng)
    with eng.begin() as conn:
        conn.execute(insert(rows), [{"id": 1, "n": 0}, {"id": 2, "n": 0}])
    try:
        yield eng
    finally:
        eng.dispose()


def _deadlock(engine) -> BaseException:
    """Two transactions lock rows 1 and 2 in opposite orders; the database aborts one of them."""
    if engine.dialect.name == "sqlite":
        blocker = engine.connect()
        blocker.execute(text("BEGIN IMMEDIATE"))
        try:
            other = create_engine(engine.url, connect_args={"timeout": 0})
            with pytest.raises(OperationalError) as info, other.begin() as conn:
                conn.execute(update(rows).where(rows.c.id == 1).values(n=1))
            other.dispose()
        finally:
            blocker.rollback()
            blocker.close()
        return info.value
    errors: list[BaseException] = []
    first_locked = threading.Barrier(2, timeout=10)

    def worker(first: int, second: int) -> None:
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "mysql":
                    conn.execute(text("SET SESSION innodb_lock_wait_timeout = 10"))
                conn.execute(update(rows).where(rows.c.id == first).values(n=first))
                first_locked.wait()
                conn.execute(update(rows).where(rows.c.id == second).values(n=first))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_real_lock_conflict_is_transient(engine) -> None:
    assert is_transient(_deadlock(engine))


def test_other_database_errors_are_not_transient(engine) -> None:
    with pytest.raises(IntegrityError) as info, engine.begin() as conn:
        conn.execute(insert(rows).values(id=1, n=5))
    assert not is_transient(info.value)
    assert not is_transient(ValueError("nope"))


def test_retry_runs_the_transaction_again_after_a_conflict(engine) -> None:
    conflict = _deadlock(engine)
    calls: list[int] = []

    def transaction() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise conflict
        with engine.begin() as conn:
            conn.execute(update(rows).where(rows.c.id == 1).values(n=42))
            return int(conn.execute(select(rows.c.n).where(rows.c.id == 1)).scalar_one())

    assert retry_transient(transaction, what="test", first_delay=0.001) == 42
    assert len(calls) == 3


def test_retry_gives_up_after_its_attempts_and_never_retries_other_errors(engine) -> None:
    conflict = _deadlock(engine)
    calls: list[int] = []

    def always_conflicts() -> None:
        calls.append(1)
        raise conflict

    with pytest.raises(OperationalError):
        retry_transient(always_conflicts, what="test", attempts=3, first_delay=0.001)
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise KeyError("bug")

    calls.clear()
    with pytest.raises(KeyError):
        retry_transient(broken, what="test", first_delay=0.001)
    assert len(calls) == 1
