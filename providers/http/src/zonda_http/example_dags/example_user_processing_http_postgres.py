"""``user_processing_http_postgres``: the seed's ``user_processing`` with real I/O, HTTP in and PostgreSQL out.

Create a ``users`` table, wait for the users API, fetch one user over HTTP, flatten it, upsert it into
PostgreSQL and query the table. The same shape as Zonda's offline ``user_processing`` example (which fakes
the API and writes SQLite), under another DAG id so both can sit in one DAG folder.

It needs both providers (``pip install ./providers/http ./providers/postgres``) and two connections:

* ``user_api`` (``http``): an API answering ``GET /api/?seed=<ds>`` like ``https://randomuser.me/api/``,
  e.g. ``ZONDA_CONN_USER_API='{"conn_type": "http", "host": "randomuser.me", "schema": "https"}'``;
* ``postgres_default``: e.g. ``ZONDA_CONN_POSTGRES_DEFAULT=postgres://postgres@127.0.0.1:5432/test``.

The run's ``ds`` is the API's seed, so re-running a day fetches the same user and the upsert leaves one row:
the DAG is idempotent. This file ships with the http provider but is not loaded by default: point a DAG
folder at it, or run it with ``zonda.testing.run_dag``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from zonda import DAG, task
from zonda_http.operators import HttpOperator
from zonda_http.sensors import HttpSensor
from zonda_postgres.hooks import PostgresHook
from zonda_postgres.operators import SQLExecuteQueryOperator

HTTP_CONN_ID = "user_api"
POSTGRES_CONN_ID = "postgres_default"
TABLE = "users"
COLUMNS = ("email", "firstname", "lastname", "country", "username", "ds")


def first_user(response: Any) -> dict[str, Any]:
    """The API's first user, as the task's XCom (JSON-safe, unlike the response object)."""
    return response.json()["results"][0]


def flatten_user(user: dict[str, Any], processed_on: str) -> dict[str, str]:
    """The columns we keep. The password the API hands out is dropped: it has no business in a table."""
    return {
        "email": user["email"].strip().lower(),
        "firstname": user["name"]["first"],
        "lastname": user["name"]["last"],
        "country": user["location"]["country"],
        "username": user["login"]["username"],
        "ds": processed_on,
    }


with DAG(
    "user_processing_http_postgres",
    description="Fetch a user from an HTTP API, process it, store it in PostgreSQL, query it",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=4,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["example", "http", "postgres"],
) as dag:
    create_table = SQLExecuteQueryOperator(
        task_id="create_table",
        conn_id=POSTGRES_CONN_ID,
        sql=f"""
            CREATE TABLE IF NOT EXISTS {TABLE} (
                email text PRIMARY KEY,
                firstname text NOT NULL,
                lastname text NOT NULL,
                country text NOT NULL,
                username text NOT NULL,
                ds date NOT NULL
            )
        """,
        handler=None,
    )

    is_api_available = HttpSensor(
        task_id="is_api_available",
        http_conn_id=HTTP_CONN_ID,
        endpoint="api/",
        request_params={"seed": "{{ ds }}"},
        poke_interval=5,
        timeout=120,
    )

    extract_user = HttpOperator(
        task_id="extract_user",
        http_conn_id=HTTP_CONN_ID,
        endpoint="api/",
        method="GET",
        data={"seed": "{{ ds }}"},
        headers={"Accept": "application/json"},
        response_check=lambda response: bool(response.json().get("results")),
        response_filter=first_user,
    )

    @task
    def process_user(user: dict[str, Any], ds: str | None = None) -> dict[str, str]:
        return flatten_user(user, processed_on=str(ds))

    @task
    def store_user(user: dict[str, str]) -> int:
        """Upsert on the email (re-running a day changes nothing); parameters are bound by psycopg."""
        return PostgresHook(POSTGRES_CONN_ID).insert_rows(
            TABLE,
            [tuple(user[column] for column in COLUMNS)],
            target_fields=COLUMNS,
            replace=True,
            replace_index="email",
        )

    query_users = SQLExecuteQueryOperator(
        task_id="query_users",
        conn_id=POSTGRES_CONN_ID,
        sql=f"SELECT email, firstname, lastname, country FROM {TABLE} WHERE ds = %(ds)s ORDER BY email",
        parameters={"ds": "{{ ds }}"},
    )

    processed = process_user(extract_user.output)
    create_table >> is_api_available >> extract_user
    store_user(processed) >> query_users
