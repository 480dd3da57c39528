"""``example_http``: wait for a users API, fetch a user with ``HttpOperator``, process it.

Not loaded by default (it is not in Zonda's examples folder); point a dags folder at this file to try it. It needs
an ``http`` connection ``user_api``, e.g. ``ZONDA_CONN_USER_API='http://randomuser.me/https'`` (host
``randomuser.me``, scheme ``https``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from zonda import DAG
from zonda.operators import PythonOperator
from zonda_http.operators import HttpOperator
from zonda_http.sensors import HttpSensor


def _user_from_response(response: Any) -> dict[str, Any]:
    """The first user of the API's answer: JSON-safe, so it is the XCom."""
    return response.json()["results"][0]


def _process_user(user: dict[str, Any]) -> dict[str, str]:
    if isinstance(user, str):
        user = json.loads(user)
    return {
        "firstname": user["name"]["first"],
        "lastname": user["name"]["last"],
        "country": user["location"]["country"],
        "username": user["login"]["username"],
        "email": user["email"],
    }


with DAG(
    "example_http",
    description="Fetch a user from an HTTP API and process it",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "http"],
) as dag:
    is_api_available = HttpSensor(
        task_id="is_api_available", http_conn_id="user_api", endpoint="api/", poke_interval=5, timeout=60
    )
    extract_user = HttpOperator(
        task_id="extract_user",
        http_conn_id="user_api",
        endpoint="api/",
        method="GET",
        headers={"Accept": "application/json"},
        response_check=lambda response: response.status_code == 200,
        response_filter=_user_from_response,
        log_response=True,
    )
    process_user = PythonOperator(
        task_id="process_user", python_callable=_process_user, op_kwargs={"user": extract_user.output}
    )
    is_api_available >> extract_user >> process_user
