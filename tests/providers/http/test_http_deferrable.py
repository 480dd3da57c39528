"""Deferrable HttpOperator / HttpSensor and the httpx HttpTrigger, against real loopback servers.

The trigger runs for real each time: inline (``run_dag``, as ``zonda dags test`` runs it: rebuilt from its JSON
form, then awaited) and through the triggerer service, with the task's attempts run by ``WorkloadRunner`` from
a DAG file and the event travelling through the metastore as JSON.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from zonda import DAG, serde
from zonda.executors.base import Workload
from zonda.executors.workload import WorkloadRunner
from zonda.metastore import tables as t
from zonda.runner.store import DagRunInfo, MetastoreRunStore
from zonda.testing import run_dag
from zonda.triggerer import Triggerer
from zonda_http.operators import HttpOperator
from zonda_http.sensors import HttpSensor
from zonda_http.triggers import HttpTrigger, response_from_payload

START = datetime(2024, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("zonda_home")


def json_body(value: Any) -> tuple[int, dict[str, str], str]:
    return 200, {"Content-Type": "application/json"}, json.dumps(value)


def _conn(monkeypatch, port: int, conn_id: str = "http_default", scheme: str = "http", **extra: Any) -> None:
    value = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": scheme, "extra": extra}
    monkeypatch.setenv(f"ZONDA_CONN_{conn_id.upper()}", json.dumps(value))


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, start_date=START, schedule=None)


def _log(settings, result, task_id: str) -> str:
    folder = settings.log_folder / f"dag_id={result.run.dag_id}" / f"run_id={result.run.run_id}"
    return (folder / f"task_id={task_id}" / "attempt=1.log").read_text()


def _first_event(trigger: HttpTrigger) -> Any:
    async def first() -> Any:
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def test_deferrable_operator_runs_its_request_in_the_trigger(serve, monkeypatch, zonda_settings) -> None:
    server = serve(lambda h: json_body({"results": [{"name": "Ada"}], "path": h.path}))
    _conn(monkeypatch, server.port, base_path="api", token="tok-secret-defer")

    def check(response, ti) -> bool:  # a context argument, as in the synchronous path
        return response.status_code == 200 and ti.task_id == "fetch"

    with _dag("http_defer") as dag:
        HttpOperator(
            task_id="fetch",
            endpoint="users",
            method="GET",
            data={"page": "{{ ds_nodash }}"},
            headers={"Accept": "application/json"},
            response_check=check,
            response_filter=lambda response: response.json()["results"][0],
            deferrable=True,
        )
    result = run_dag(dag, START)
    assert result.states() == {"fetch": "success"}, result.ti("fetch").error
    assert result.ti("fetch").xcom_pull(task_ids="fetch") == {"name": "Ada"}
    [request] = server.requests
    assert request["path"] == "/api/users?page=20240101"  # templated data became the query
    assert request["headers"]["User-Agent"].startswith("python-httpx/")  # sent by the trigger, not requests
    assert request["headers"]["Authorization"] == "Bearer tok-secret-defer"
    assert request["headers"]["Accept"] == "application/json"
    assert "no triggerer in this run, so the trigger runs here" in _log(zonda_settings, result, "fetch")


def test_deferrable_operator_paginates_with_one_deferral_per_page(serve, monkeypatch) -> None:
    def pages(h):
        page = int(parse_qs(urlsplit(h.path).query).get("page", ["1"])[0])
        return json_body({"items": [page * 10], "next": page + 1 if page < 3 else None})

    server = serve(pages)
    _conn(monkeypatch, server.port)

    def next_page(response):
        nxt = response.json()["next"]
        return {"data": {"page": nxt}} if nxt else None

    with _dag("http_defer_pages") as dag:
        HttpOperator(
            task_id="paged",
            endpoint="things",
            method="GET",
            data={"size": 1},
            pagination_function=next_page,
            response_filter=lambda responses: [i for r in responses for i in r.json()["items"]],
            deferrable=True,
        )
    result = run_dag(dag, START)
    assert result.states() == {"paged": "success"}, result.ti("paged").error
    assert result.ti("paged").xcom_pull(task_ids="paged") == [10, 20, 30]
    assert [r["path"] for r in server.requests] == ["/things?size=1", "/things?size=1&page=2", "/things?size=1&page=3"]


def test_deferrable_operator_fails_on_an_error_status_and_a_false_check(serve, monkeypatch, zonda_settings) -> None:
    server = serve(lambda h: (500, {}, "exploded, token tok-secret-500") if h.path == "/boom" else (200, {}, "meh"))
    _conn(monkeypatch, server.port, token="tok-secret-500")
    with _dag("http_defer_fail") as dag:
        HttpOperator(task_id="boom", endpoint="boom", method="GET", deferrable=True)
        HttpOperator(task_id="nope", endpoint="x", method="GET", response_check=lambda r: False, deferrable=True)
    result = run_dag(dag, START)
    assert result.states() == {"boom": "failed", "nope": "failed"}
    assert "500:Internal Server Error" in (result.ti("boom").error or "")
    log = _log(zonda_settings, result, "boom")
    assert "exploded, token ***" in log and "tok-secret-500" not in log
    assert "response_check returned False" in (result.ti("nope").error or "")
    # An option only requests understands fails the task before anything is deferred.
    with _dag("http_defer_bad_option") as dag:
        HttpOperator(task_id="stream", endpoint="x", method="GET", extra_options={"stream": True}, deferrable=True)
    result = run_dag(dag, START)
    assert result.states() == {"stream": "failed"}
    assert "extra_options ['stream'] are not supported when deferred" in (result.ti("stream").error or "")


def test_deferrable_sensor_polls_in_the_trigger_and_rechecks_after_resuming(serve, monkeypatch) -> None:
    calls: list[float] = []

    def respond(h):
        calls.append(time.monotonic())
        if len(calls) <= 3:
            return 404, {}, "not yet"
        return json_body({"state": "done" if len(calls) >= 5 else "running"})

    server = serve(respond)
    _conn(monkeypatch, server.port)

    def check(response):
        from zonda.sensors import PokeReturnValue

        body = response.json()
        return PokeReturnValue(body["state"] == "done", xcom_value=body)

    with _dag("http_sensor_defer") as dag:
        HttpSensor(
            task_id="wait", endpoint="job/1", response_check=check, poke_interval=0.05, timeout=10, deferrable=True
        )
    result = run_dag(dag, START)
    assert result.states() == {"wait": "success"}, result.ti("wait").error
    assert result.ti("wait").xcom_pull(task_ids="wait") == {"state": "done"}
    # 1 poke in the worker (404), 2 more 404s and a "running" polled by the first trigger, then a second
    # deferral (response_check said not yet) whose trigger got "done".
    assert len(calls) == 5
    agents = [r["headers"]["User-Agent"] for r in server.requests]
    assert agents[0].startswith("python-requests/") and all(a.startswith("python-httpx/") for a in agents[1:])


def test_deferrable_sensor_fails_on_other_errors_and_times_out(serve, monkeypatch) -> None:
    server = serve(lambda h: (404, {}, "") if h.path == "/missing" else (503, {}, "down"))
    _conn(monkeypatch, server.port, retries=0)
    with _dag("http_sensor_defer_fail") as dag:
        HttpSensor(task_id="down", endpoint="down", poke_interval=0.05, timeout=5, deferrable=True)
        HttpSensor(task_id="never", endpoint="missing", poke_interval=0.05, timeout=0.4, deferrable=True)
        HttpSensor(task_id="soft", endpoint="missing", poke_interval=0.05, timeout=0.3, soft_fail=True, deferrable=True)
    started = time.monotonic()
    result = run_dag(dag, START)
    assert time.monotonic() - started < 8
    assert result.states() == {"down": "failed", "never": "failed", "soft": "skipped"}
    assert "HTTP 503" in (result.ti("down").error or "")
    assert "timed out" in (result.ti("never").error or "")


def test_trigger_retry_policy_matches_the_hook(serve, monkeypatch) -> None:
    calls: list[str] = []

    def flaky(h):
        calls.append(h.command)
        return (503, {}, "busy") if len(calls) % 3 else (200, {}, "done")

    server = serve(flaky)
    _conn(monkeypatch, server.port)
    event = _first_event(HttpTrigger(method="GET", endpoint="x"))
    assert event["status"] == "success" and event["response"]["text"] == "done"
    assert calls == ["GET"] * 3
    calls.clear()
    event = _first_event(HttpTrigger(method="POST", endpoint="x", json={"a": 1}))
    assert event["status"] == "error" and event["message"] == "503:Service Unavailable"
    assert calls == ["POST"]  # not retried: the server may have acted on it
    calls.clear()
    event = _first_event(HttpTrigger(method="POST", endpoint="x", json={"a": 1}, retry_methods=["POST"]))
    assert event["status"] == "success" and calls == ["POST"] * 3
    assert json.loads(server.requests[-1]["body"]) == {"a": 1}


def test_trigger_redirect_to_another_port_drops_credentials(serve, monkeypatch) -> None:
    other = serve(lambda h: (200, {}, "landed"))
    origin = serve(lambda h: (302, {"Location": f"http://127.0.0.1:{other.port}/landing"}, ""))
    _conn(monkeypatch, origin.port, token="tok-secret-123", headers={"X-Api-Key": "key-secret-456", "Accept": "a/b"})
    event = _first_event(HttpTrigger(method="GET", endpoint="start"))
    assert event["response"]["text"] == "landed"
    assert origin.requests[0]["headers"]["Authorization"] == "Bearer tok-secret-123"
    got = {k.lower() for k in other.requests[0]["headers"]}
    assert "authorization" not in got and "x-api-key" not in got and "accept" in got
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", f"http://user:password1@127.0.0.1:{origin.port}/http")
    _first_event(HttpTrigger(method="GET", endpoint="start"))
    assert "authorization" in {k.lower() for k in origin.requests[-1]["headers"]}
    assert "authorization" not in {k.lower() for k in other.requests[-1]["headers"]}


def test_trigger_tls_verification_and_ca_bundle(serve, monkeypatch, self_signed) -> None:
    cert_file, context = self_signed
    server = serve(lambda h: (200, {}, "secure"), ssl_context=context)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    _conn(monkeypatch, server.port, scheme="https")
    event = _first_event(HttpTrigger(method="GET", endpoint="x"))
    assert event["status"] == "error" and "ca_bundle" in event["message"]
    _conn(monkeypatch, server.port, scheme="https", ca_bundle=str(cert_file))
    event = _first_event(HttpTrigger(method="GET", endpoint="x"))
    assert event["status"] == "success" and event["response"]["text"] == "secure"


def test_trigger_timeout_and_refused_connection_are_error_events(serve, monkeypatch, closed_port) -> None:
    server = serve(lambda h: (time.sleep(2.0), (200, {}, "late"))[1])
    _conn(monkeypatch, server.port, timeout=0.2)
    started = time.monotonic()
    event = _first_event(HttpTrigger(method="GET", endpoint="slow"))
    assert event["status"] == "error" and "timed out" in event["message"]
    assert time.monotonic() - started < 1.5 and len(server.requests) == 1  # a read timeout is not retried
    _conn(monkeypatch, closed_port, retries=1)
    event = _first_event(HttpTrigger(method="GET", endpoint="x"))
    assert event["status"] == "error" and "ConnectError" in event["message"]


def test_payload_is_json_and_rebuilds_a_response_whatever_the_charset(serve, monkeypatch) -> None:
    body = '{"name": "Jos\u00e9"}'.encode("latin-1")
    server = serve(lambda h: (200, {"Content-Type": "application/json; charset=latin-1"}, body))
    _conn(monkeypatch, server.port)
    event = _first_event(HttpTrigger(method="GET", endpoint="x"))
    assert serde.loads(serde.dumps(event)) == event
    response = response_from_payload(event["response"])
    assert response.json() == {"name": "Jos\u00e9"} and response.headers["content-type"].startswith("application/json")


# -- through the triggerer service ---------------------------------------------------------------------------

DAG_FILE = """
from datetime import datetime

from zonda import DAG
from zonda_http.operators import HttpOperator
from zonda_http.sensors import HttpSensor

with DAG("http_deferring", start_date=datetime(2024, 1, 1), schedule=None):
    HttpOperator(
        task_id="fetch",
        endpoint="user",
        method="GET",
        response_filter=lambda response: response.json()["name"],
        deferrable=True,
    )
    HttpSensor(task_id="ready", endpoint="ready", poke_interval=0.05, timeout=30, deferrable=True)
"""


class Deployment:
    """One run of ``http_deferring`` in the metastore, and attempts run as an executor would run them."""

    def __init__(self, home: Path, metastore: Any) -> None:
        self.metastore = metastore
        self.dag_file = home / "dags" / "http_deferring.py"
        self.dag_file.parent.mkdir(parents=True, exist_ok=True)
        self.dag_file.write_text(textwrap.dedent(DAG_FILE))
        store = MetastoreRunStore(metastore)
        now = datetime.now(UTC)
        self.run = DagRunInfo("http_deferring", "manual__1", now, now, now, state="running", start_date=now)
        store.create_dag_run(self.run)
        rows = [{"task_id": tid, "map_index": -1, "try_number": 0, "max_tries": 0} for tid in ("fetch", "ready")]
        store.create_task_instances(self.run, rows)
        store.close()
        self.runner = WorkloadRunner(home=str(home))

    def row(self, task_id: str) -> Any:
        with self.metastore.engine.connect() as conn:
            ti = t.task_instance.c
            return conn.execute(
                select(t.task_instance).where(ti.dag_run_id == self.run.id, ti.task_id == task_id)
            ).one()

    def attempt(self, task_id: str) -> Any:
        row = self.row(task_id)
        with self.metastore.engine.begin() as conn:
            ti = t.task_instance.c
            conn.execute(
                update(t.task_instance)
                .where(ti.dag_run_id == self.run.id, ti.task_id == task_id)
                .values(state="queued", queued_dttm=datetime.now(UTC))
            )
        self.runner.run(
            Workload(
                ti_id=row.id,
                dag_id="http_deferring",
                run_id=self.run.run_id,
                task_id=task_id,
                map_index=-1,
                # As the scheduler numbers it: a resumed deferral continues its try.
                try_number=row.try_number + (0 if row.next_method else 1),
                fileloc=str(self.dag_file),
            )
        )
        return self.row(task_id)

    def xcom(self, task_id: str) -> Any:
        with self.metastore.engine.connect() as conn:
            x = t.xcom.c
            return serde.loads(
                conn.execute(select(x.value).where(x.dag_run_id == self.run.id, x.task_id == task_id)).scalar_one()
            )

    def triggers(self) -> list[Any]:
        with self.metastore.engine.connect() as conn:
            return conn.execute(select(t.trigger)).all()


def test_deferred_http_tasks_resume_through_the_triggerer(
    serve, monkeypatch, zonda_home, zonda_settings, zonda_metastore
) -> None:
    ready_after = {"n": 3}

    def respond(h):
        if h.path == "/user":
            return json_body({"name": "Grace"})
        ready_after["n"] -= 1
        return (404, {}, "") if ready_after["n"] > 0 else (200, {}, "ok")

    server = serve(respond)
    _conn(monkeypatch, server.port)
    deployment = Deployment(zonda_home, zonda_metastore)
    fetch = deployment.attempt("fetch")
    ready = deployment.attempt("ready")
    assert (fetch.state, fetch.next_method) == ("deferred", "execute_complete")
    assert (ready.state, ready.next_method) == ("deferred", "execute_complete")
    triggers = deployment.triggers()
    assert {tr.classpath for tr in triggers} == {"zonda_http.triggers.HttpTrigger"}
    assert all(isinstance(json.loads(tr.kwargs), dict) for tr in triggers)  # stored as JSON, never pickled
    assert [r["path"] for r in server.requests] == ["/ready"]  # the sensor's own first poke; fetch sent nothing

    triggerer = Triggerer(zonda_settings, metastore=zonda_metastore, capacity=10)
    try:
        deadline = time.monotonic() + 10
        while not (deployment.row("fetch").state == deployment.row("ready").state == "scheduled"):
            assert time.monotonic() < deadline, "the triggerer did not fire both triggers"
            triggerer.run_once(timeout=0.2)
    finally:
        triggerer.shutdown()
    event = serde.loads(deployment.row("fetch").next_kwargs)["event"]
    assert event["status"] == "success" and json.loads(event["response"]["text"]) == {"name": "Grace"}
    assert deployment.triggers() == []

    fetch = deployment.attempt("fetch")
    ready = deployment.attempt("ready")
    assert (fetch.state, fetch.try_number) == ("success", 1)
    assert (ready.state, ready.try_number) == ("success", 1)
    assert deployment.xcom("fetch") == "Grace"
    assert [r["path"] for r in server.requests].count("/ready") == 3
