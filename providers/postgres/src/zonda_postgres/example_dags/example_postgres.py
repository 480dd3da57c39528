"""``example_postgres``: the user-processing pipeline on PostgreSQL.

Create a ``users`` table, insert processed users (upserted, so reruns are idempotent), wait until they are
there, then query them. Uses the connection ``postgres_default``, for example::

    export ZONDA_CONN_POSTGRES_DEFAULT=postgres://postgres@127.0.0.1:5432/postgres

This file ships with the provider but is not loaded by default: point a DAG folder at it, or run it with
``zonda.testing.run_dag``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from zonda import DAG, task
from zonda_postgres.hooks import PostgresHook
from zonda_postgres.operators import SQLExecuteQueryOperator
from zonda_postgres.sensors import SqlSensor

CONN_ID = "postgres_default"

RAW_USERS = [
    {"id": 1, "name": {"first": "Ada", "last": "Lovelace"}, "email": "ADA@example.com", "country": "UK"},
    {"id": 2, "name": {"first": "Grace", "last": "Hopper"}, "email": "grace@example.com", "country": "US"},
    {"id": 3, "name": {"first": "Linus", "last": "Torvalds"}, "email": "Linus@Example.com", "country": "FI"},
]

with DAG(
    "example_postgres",
    description="Create a table, insert processed users, query them (Postgres provider)",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "postgres"],
) as dag:
    create_table = SQLExecuteQueryOperator(
        task_id="create_table",
        conn_id=CONN_ID,
        sql="""
            CREATE TABLE IF NOT EXISTS users (
                id integer PRIMARY KEY,
                firstname text NOT NULL,
                lastname text NOT NULL,
                email text NOT NULL,
                country text NOT NULL
            )
        """,
        handler=None,
    )

    @task
    def store_users() -> int:
        """Flatten each raw user and upsert it (parameters are bound by psycopg)."""
        rows = [(u["id"], u["name"]["first"], u["name"]["last"], u["email"].lower(), u["country"]) for u in RAW_USERS]
        return PostgresHook(CONN_ID).insert_rows(
            "users",
            rows,
            target_fields=["id", "firstname", "lastname", "email", "country"],
            replace=True,
            replace_index="id",
        )

    wait_for_users = SqlSensor(
        task_id="wait_for_users",
        conn_id=CONN_ID,
        sql="SELECT count(*) FROM users",
        success=lambda count: count >= len(RAW_USERS),
        poke_interval=1,
        timeout=30,
    )

    query_users = SQLExecuteQueryOperator(
        task_id="query_users",
        conn_id=CONN_ID,
        sql="SELECT id, firstname, lastname, email FROM users WHERE country = ANY(%(countries)s) ORDER BY id",
        parameters={"countries": ["UK", "US", "FI"]},
    )

    @task
    def report(users: Any) -> str:
        return ", ".join(f"{first} {last} <{email}>" for _, first, last, email in users)

    create_table >> store_users() >> wait_for_users >> query_users
    report(query_users.output)
