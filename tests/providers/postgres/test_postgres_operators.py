"""SQLExecuteQueryOperator and SqlSensor in small DAGs run with zonda.testing.run_dag on the real PostgreSQL."""

from __future__ import annotations

import importlib
from datetime import datetime
from pathlib import Path

import pytest

from zonda import DAG
from zonda.connection import Connection
from zonda.testing import run_dag
from zonda_postgres.hooks import PostgresHook
from zonda_postgres.operators import SQLExecuteQueryOperator
from zonda_postgres.sensors import SqlSensor


def _dag(dag_id: str, **kwargs) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1), **kwargs)


def test_operator_string_list_file_and_parameters(pg_conn: Connection, tmp_path: Path) -> None:
    (tmp_path / "select_users.sql").write_text("SELECT id, name FROM users WHERE id <= {{ params.max_id }} ORDER BY id")
    with _dag("pg_ops", template_searchpath=[str(tmp_path)], params={"max_id": 2}) as dag:
        create = SQLExecuteQueryOperator(
            task_id="create",
            sql=["CREATE TABLE users (id int PRIMARY KEY, name text)", "INSERT INTO users VALUES (1, 'a'), (3, 'c')"],
            handler=None,
        )
        insert = SQLExecuteQueryOperator(
            task_id="insert", sql="INSERT INTO users VALUES (%s, %s)", parameters=[2, "O'Hara"], handler=None
        )
        from_file = SQLExecuteQueryOperator(task_id="from_file", sql="select_users.sql")
        several = SQLExecuteQueryOperator(
            task_id="several",
            sql="SELECT count(*) FROM users; SELECT max(id) FROM users",
            split_statements=True,
            return_last=False,
        )
        create >> insert >> [from_file, several]
    result = run_dag(dag)
    assert result.succeeded, {ti.task_id: ti.error for ti in result.task_instances}
    ti = result.ti("from_file")
    assert ti.xcom_pull(task_ids="from_file") == [[1, "a"], [2, "O'Hara"]]
    assert ti.xcom_pull(task_ids="several") == [[[3]], [[3]]]
    assert ti.xcom_pull(task_ids="create") is None


def test_operator_failure_rolls_back(pg_conn: Connection) -> None:
    PostgresHook().run("CREATE TABLE t (id int PRIMARY KEY)")
    with _dag("pg_fail") as dag:
        SQLExecuteQueryOperator(task_id="bad", sql=["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)"])
    result = run_dag(dag)
    assert result.ti("bad").state.value == "failed"
    assert "duplicate key" in (result.ti("bad").error or "")
    assert PostgresHook().get_records("SELECT * FROM t") == []


def test_operator_result_too_large_points_to_transfers(pg_conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONDA__XCOM__MAX_SIZE", "2000")
    with _dag("pg_big") as dag:
        SQLExecuteQueryOperator(task_id="big", sql="SELECT i, md5(i::text) FROM generate_series(1, 1000) AS i")
    result = run_dag(dag)
    ti = result.ti("big")
    assert ti.state.value == "failed"
    assert "[xcom] max_size" in ti.error and "transfer operator" in ti.error


def test_sql_sensor_semantics(pg_conn: Connection) -> None:
    PostgresHook().run("CREATE TABLE flags (name text, value int); INSERT INTO flags VALUES ('ready', 5)")
    common = {"poke_interval": 0.05, "timeout": 0.3}
    with _dag("pg_sensor") as dag:
        SqlSensor(task_id="truthy", sql="SELECT value FROM flags WHERE name = %s", parameters=["ready"], **common)
        SqlSensor(task_id="success", sql="SELECT value FROM flags", success=lambda v: v > 3, **common)
        SqlSensor(task_id="never", sql="SELECT value FROM flags", success=lambda v: v > 10, soft_fail=True, **common)
        SqlSensor(task_id="failure", sql="SELECT value FROM flags", failure=lambda v: v == 5, retries=2, **common)
        SqlSensor(task_id="empty_waits", sql="SELECT 1 FROM flags WHERE false", soft_fail=True, **common)
        SqlSensor(task_id="empty_fails", sql="SELECT 1 FROM flags WHERE false", fail_on_empty=True, **common)
        SqlSensor(task_id="zero", sql="SELECT 0", soft_fail=True, **common)
    result = run_dag(dag)
    states = result.states()
    assert states["truthy"] == "success"
    assert states["success"] == "success"
    assert states["never"] == "skipped"
    assert states["failure"] == "failed" and result.ti("failure").try_number == 1
    assert "Failure criteria met" in result.ti("failure").error
    assert states["empty_waits"] == "skipped"
    assert states["empty_fails"] == "failed" and "No rows returned" in result.ti("empty_fails").error
    assert states["zero"] == "skipped"


def test_example_dag_runs(pg_conn: Connection) -> None:
    module = importlib.import_module("zonda_postgres.example_dags.example_postgres")
    result = run_dag(module.dag)
    assert result.succeeded, {ti.task_id: ti.error for ti in result.task_instances}
    assert result.ti("report").xcom_pull(task_ids="report") == (
        "Ada Lovelace <ada@example.com>, Grace Hopper <grace@example.com>, Linus Torvalds <linus@example.com>"
    )
    # A rerun upserts instead of failing on the primary key.
    assert run_dag(module.dag).succeeded
    assert PostgresHook().get_first("SELECT count(*) FROM users") == (3,)
