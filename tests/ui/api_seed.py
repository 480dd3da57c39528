"""A metastore with history for the API tests: DAG ``api_dag`` (tasks a, b and a mapped task m) with its
serialized form, ``RUNS`` runs each with a, b and m[0..2], XComs (one under a secret-looking key), an import
error, a connection with a password and a secret extra, and a sensitive variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from zonda.metastore import tables as t

RUNS = 7
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "s3cr3t-value-never-shown"


def seed_api_history(web: Any) -> None:
    from zonda import DAG
    from zonda.connection import Connection
    from zonda.operations.connections import add_connection
    from zonda.operations.variables import set_variable
    from zonda.operators import EmptyOperator
    from zonda.serialization import serialize_dag

    with DAG("api_dag", schedule=None, start_date=datetime(2024, 1, 1), tags=["team_a"]) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b") >> EmptyOperator(task_id="m")
    data, digest = serialize_dag(dag)
    with web.engine.begin() as conn:
        conn.execute(
            t.dag.insert().values(dag_id="api_dag", is_paused=False, is_active=True, fileloc="x.py", tags='["team_a"]')
        )
        conn.execute(t.serialized_dag.insert().values(dag_id="api_dag", data=data, dag_hash=digest, fileloc="x.py"))
        for n in range(RUNS):
            run_id = f"scheduled__{n}"
            when = T0 + timedelta(days=n)
            dag_run_id = conn.execute(
                t.dag_run.insert().values(
                    dag_id="api_dag",
                    run_id=run_id,
                    run_type="scheduled",
                    state="success" if n % 2 else "failed",
                    logical_date=when,
                    start_date=when,
                    end_date=when + timedelta(minutes=1),
                )
            ).inserted_primary_key[0]
            for task_id, map_index in (("a", -1), ("b", -1), ("m", 0), ("m", 1), ("m", 2)):
                conn.execute(
                    t.task_instance.insert().values(
                        dag_run_id=dag_run_id,
                        dag_id="api_dag",
                        run_id=run_id,
                        task_id=task_id,
                        map_index=map_index,
                        state="success" if task_id != "b" or n % 2 else "failed",
                        try_number=1,
                        start_date=when,
                        end_date=when + timedelta(seconds=10),
                        duration=10.0 + n,
                        operator="EmptyOperator",
                    )
                )
            for key, value in (("return_value", '{"rows": 3}'), ("api_token", f'"{SECRET}"')):
                conn.execute(
                    t.xcom.insert().values(
                        dag_run_id=dag_run_id,
                        task_id="a",
                        map_index=-1,
                        key=key,
                        dag_id="api_dag",
                        run_id=run_id,
                        value=value,
                        timestamp=when,
                    )
                )
        conn.execute(t.import_error.insert().values(filename="broken.py", stacktrace="SyntaxError", timestamp=T0))
    add_connection(
        web.store,
        web.settings,
        Connection(conn_id="api_conn", conn_type="generic", password=SECRET, extra={"api_key": SECRET, "x": 1}),
    )
    set_variable(web.settings, "db_password", SECRET, metastore=web.store)
