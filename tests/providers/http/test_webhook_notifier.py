"""``HttpWebhookNotifier`` posts to a real HTTP server on loopback through the connection's HttpHook."""

from __future__ import annotations

import json
from datetime import datetime

from zonda import DAG
from zonda.hooks import BaseHook
from zonda.operators import PythonOperator
from zonda.testing import run_dag
from zonda_http.notifications import HttpWebhookNotifier

SECRET = "tok-Wb9!secret"


def _boom() -> None:
    token = BaseHook.get_connection("alerts").extra_dejson["token"]
    raise ValueError(f"upstream answered 500 for token {token}")


def test_default_payload_on_task_failure_with_the_connections_token(serve, zonda_home, monkeypatch) -> None:
    server = serve(lambda handler: (200, {"Content-Type": "application/json"}, '{"ok": true}'))
    monkeypatch.setenv(
        "ZONDA_CONN_ALERTS",
        json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{server.port}", "extra": {"token": SECRET}}),
    )
    with DAG("hooked", start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(
            task_id="load",
            python_callable=_boom,
            on_failure_callback=HttpWebhookNotifier(http_conn_id="alerts", endpoint="/hooks/{{ dag.dag_id }}"),
        )
    result = run_dag(dag, "2024-05-02")
    assert result.states() == {"load": "failed"}
    [request] = server.requests
    assert request["method"] == "POST" and request["path"] == "/hooks/hooked"
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    payload = json.loads(request["body"])
    assert payload == {
        "dag_id": "hooked",
        "run_id": result.run.run_id,
        "logical_date": "2024-05-02T00:00:00+00:00",
        "task_id": "load",
        "map_index": -1,
        "try_number": 1,
        "state": "failed",
        "exception": "ValueError: upstream answered 500 for token ***",
    }


def test_templated_payload_and_an_error_answer_leave_the_task_state_alone(serve, zonda_home, monkeypatch) -> None:
    server = serve(lambda handler: (503, {}, "down"))
    monkeypatch.setenv(
        "ZONDA_CONN_HTTP_DEFAULT",
        json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{server.port}", "extra": {"retries": 0}}),
    )
    notifier = HttpWebhookNotifier(json={"text": "{{ ti.task_id }} done on {{ ds }}"})
    with DAG("hooked_ok", start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(task_id="load", python_callable=lambda: None, on_success_callback=notifier)
    result = run_dag(dag, "2024-05-02")
    assert result.states() == {"load": "success"}
    assert [json.loads(r["body"]) for r in server.requests] == [{"text": "load done on 2024-05-02"}]
    assert "503:Service Unavailable" in result.ti("load").log_path.read_text()
