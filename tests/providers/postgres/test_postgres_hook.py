"""PostgresHook against the real local PostgreSQL."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from zonda.connection import Connection
from zonda.exceptions import ZondaException
from zonda_postgres.hooks import PostgresHook, split_sql_statements


@pytest.fixture
def hook(pg_conn: Connection) -> PostgresHook:
    return PostgresHook()


def test_connection_from_env_and_params(hook: PostgresHook, pg_conn: Connection) -> None:
    assert hook.get_first("SELECT current_database()") == (pg_conn.schema,)
    assert hook.test_connection() == (True, "Connection successfully tested")


def test_extras_reach_libpq(pg_conn: Connection) -> None:
    pg_conn.extra = {"application_name": "zonda-test", "options": "-c search_path=myschema", "connect_timeout": "5"}
    hook = PostgresHook(connection=pg_conn)
    assert hook.get_first("SELECT current_setting('application_name'), current_setting('search_path')") == (
        "zonda-test",
        "myschema",
    )


def test_parameters_are_bound(hook: PostgresHook) -> None:
    hook.run("CREATE TABLE t (id int PRIMARY KEY, name text)")
    tricky = "O'Brien\"; DROP TABLE t; --  %s %(x)s"
    hook.run("INSERT INTO t VALUES (%s, %s)", parameters=(1, tricky))
    assert hook.get_records("SELECT name FROM t WHERE id = %(id)s", {"id": 1}) == [(tricky,)]
    # A literal % without parameters is not a placeholder.
    assert hook.get_first("SELECT '100%'") == ("100%",)


def test_run_rolls_back_on_error(hook: PostgresHook) -> None:
    hook.run("CREATE TABLE t (id int PRIMARY KEY)")
    with pytest.raises(Exception, match="duplicate key"):
        hook.run(["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (1)"])
    assert hook.get_records("SELECT id FROM t") == []
    # autocommit keeps the statements that ran before the error.
    with pytest.raises(Exception, match="duplicate key"):
        hook.run(["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)"], autocommit=True)
    assert hook.get_records("SELECT id FROM t") == [(1,)]


def test_split_statements_and_handlers(hook: PostgresHook) -> None:
    sql = "CREATE TABLE t (s text); INSERT INTO t VALUES ('a;b'), ($$c;d$$); -- done;\nSELECT s FROM t ORDER BY s;"
    assert hook.run(sql, split_statements=True, handler=lambda c: c.fetchall() if c.description else None) == [
        ("a;b",),
        ("c;d",),
    ]
    assert hook.run(["SELECT 1", "SELECT 2"], handler=lambda c: c.fetchone()) == [(1,), (2,)]
    assert split_sql_statements("select ';'; /* ; */ select 2;;") == ["select ';'", "/* ; */ select 2"]


def test_insert_rows_batched_and_upsert(hook: PostgresHook) -> None:
    hook.run("CREATE TABLE users (id int PRIMARY KEY, name text, country text)")
    rows = [(i, f"user{i}", "AR") for i in range(25)]
    assert hook.insert_rows("users", rows, target_fields=["id", "name", "country"], commit_every=10) == 25
    assert hook.get_first("SELECT count(*) FROM users") == (25,)
    hook.insert_rows(
        "public.users",
        [(1, "Ada", "UK"), (100, "Grace", "US")],
        target_fields=["id", "name", "country"],
        replace=True,
        replace_index="id",
    )
    assert hook.get_records("SELECT id, name, country FROM users WHERE id IN (1, 100) ORDER BY id") == [
        (1, "Ada", "UK"),
        (100, "Grace", "US"),
    ]
    with pytest.raises(ZondaException, match="replace_index"):
        hook.insert_rows("users", [(1, "x", "y")], target_fields=["id", "name", "country"], replace=True)


def test_copy_both_ways(hook: PostgresHook, tmp_path) -> None:
    hook.run("CREATE TABLE src (id int, name text)")
    source = tmp_path / "in.tsv"
    source.write_text("".join(f"{i}\tname {i}\n" for i in range(1000)))
    hook.bulk_load("src", source)
    assert hook.get_first("SELECT count(*), max(id) FROM src") == (1000, 999)

    dumped = tmp_path / "out.tsv"
    hook.bulk_dump("src", dumped)
    assert sorted(dumped.read_text().splitlines()) == sorted(source.read_text().splitlines())

    csv_file = tmp_path / "out.csv"
    hook.copy_expert("COPY (SELECT id, name FROM src WHERE id < 2 ORDER BY id) TO STDOUT WITH CSV HEADER", csv_file)
    assert csv_file.read_text().splitlines() == ["id,name", "0,name 0", "1,name 1"]
    hook.run("CREATE TABLE dst (id int, name text)")
    hook.copy_expert("COPY dst FROM STDIN WITH CSV HEADER", csv_file)
    assert hook.get_records("SELECT * FROM dst ORDER BY id") == [(0, "name 0"), (1, "name 1")]


def _peak_of_streaming(hook: PostgresHook, rows: int, batch_size: int) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        batches = 0
        for batch in hook.iter_batches("SELECT i, i * 2 FROM generate_series(1, %s) AS i", batch_size, (rows,)):
            assert len(batch) <= batch_size
            count += len(batch)
            batches += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    return peak, batches


def test_iter_batches_keeps_memory_flat(hook: PostgresHook) -> None:
    small, small_batches = _peak_of_streaming(hook, 20_000, 5_000)
    large, large_batches = _peak_of_streaming(hook, 200_000, 5_000)
    assert (small_batches, large_batches) == (4, 40)
    # Ten times the rows, about the same peak: one batch in memory at a time.
    assert large < small * 1.5 + 256 * 1024, (small, large)


def test_iter_batches_rows_and_validation(hook: PostgresHook) -> None:
    batches = list(hook.iter_batches("SELECT i FROM generate_series(1, 7) AS i ORDER BY i", batch_size=3))
    assert batches == [[(1,), (2,), (3,)], [(4,), (5,), (6,)], [(7,)]]
    with pytest.raises(ZondaException, match="batch_size"):
        next(hook.iter_batches("SELECT 1", batch_size=0))


def test_sqlalchemy_engine(hook: PostgresHook) -> None:
    from sqlalchemy import text

    engine = hook.get_sqlalchemy_engine()
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 41 + 1")).scalar() == 42
    finally:
        engine.dispose()


def test_bad_password_gives_one_clear_message(password_rejecting_server: int) -> None:
    secret = "s3cr3t-Pa55"
    conn = Connection(
        conn_id="pg_bad",
        conn_type="postgres",
        host="127.0.0.1",
        port=password_rejecting_server,
        schema="appdb",
        login="alice",
        password=secret,
        extra={"sslmode": "disable", "connect_timeout": "5"},
    )
    hook = PostgresHook(connection=conn)
    with pytest.raises(ZondaException) as info:
        hook.get_conn()
    message = str(info.value)
    assert secret not in message
    assert f"127.0.0.1:{password_rejecting_server}" in message
    assert "'appdb'" in message and "password authentication failed" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    ok, text = hook.test_connection()
    assert not ok and secret not in text


def test_unreachable_host_gives_one_clear_message(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "an0ther-s3cret"
    monkeypatch.setenv("ZONDA_CONN_PG_DOWN", f"postgres://bob:{secret}@127.0.0.1:{closed_port}/warehouse")
    hook = PostgresHook("pg_down")
    with pytest.raises(ZondaException) as info:
        hook.get_records("SELECT 1")
    message = str(info.value)
    assert secret not in message
    assert f"127.0.0.1:{closed_port}" in message and "'warehouse'" in message
    assert "connection refused" in message
    assert "\n" not in message
