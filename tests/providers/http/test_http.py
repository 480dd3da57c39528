"""The http provider against real servers on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from zonda import serde
from zonda.masking import get_masker
from zonda_http.hooks import HttpException, HttpHook
from zonda_http.operators import HttpOperator
from zonda_http.sensors import HttpSensor
from zonda_http.triggers import HttpTrigger, response_from_payload

pytestmark = pytest.mark.usefixtures("zonda_home")


def json_body(value):
    return 200, {"Content-Type": "application/json"}, json.dumps(value)


def _conn(monkeypatch, port, conn_id="http_default", scheme="http", **extra):
    value = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": scheme, "extra": extra}
    monkeypatch.setenv(f"ZONDA_CONN_{conn_id.upper()}", json.dumps(value))


def _ok(text="ok"):
    return lambda h: (200, {}, text)


def test_get_with_base_path_params_and_bearer_token(serve, monkeypatch):
    server = serve(lambda h: json_body({"path": h.path}))
    _conn(monkeypatch, server.port, base_path="api/v1", token="tok-secret-123", headers={"X-Team": "data"})
    response = HttpHook("GET").run("users", data={"page": 2}, headers={"X-Req": "1"})
    assert response.json() == {"path": "/api/v1/users?page=2"}
    headers = server.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer tok-secret-123"
    assert headers["X-Team"] == "data" and headers["X-Req"] == "1"


def test_basic_auth_and_post_json(serve, monkeypatch):
    server = serve(_ok())
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", f"http://user:pa%40ss@127.0.0.1:{server.port}/http")
    HttpHook().run("items", json={"a": 1})
    req = server.requests[0]
    assert req["method"] == "POST" and json.loads(req["body"]) == {"a": 1}
    import base64

    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"user:pa@ss").decode()


def test_pagination_collects_three_pages(serve, monkeypatch):
    def pages(h):
        page = int(parse_qs(urlsplit(h.path).query).get("page", ["1"])[0])
        return json_body({"page": page, "items": [page * 10], "next": page + 1 if page < 3 else None})

    server = serve(pages)
    _conn(monkeypatch, server.port)
    seen = []

    def next_page(response):
        nxt = response.json()["next"]
        return {"data": {"page": nxt}} if nxt else None

    def response_filter(responses):
        seen.append(len(responses))
        return [item for r in responses for item in r.json()["items"]]

    op = HttpOperator(
        task_id="paged",
        endpoint="things",
        method="GET",
        data={"size": 1},
        pagination_function=next_page,
        response_filter=response_filter,
    )
    assert op.execute({}) == [10, 20, 30]
    assert seen == [3]
    assert [r["path"] for r in server.requests] == ["/things?size=1", "/things?size=1&page=2", "/things?size=1&page=3"]
    # Without a filter the XCom is the list of the pages' texts (JSON-safe).
    op2 = HttpOperator(task_id="paged2", endpoint="things", method="GET", pagination_function=next_page)
    result = op2.execute({})
    assert len(result) == 3 and serde.loads(serde.dumps(result)) == result


def test_operator_response_check_and_templated_fields(serve, monkeypatch):
    server = serve(_ok("hello"))
    _conn(monkeypatch, server.port)
    assert set(HttpOperator.template_fields) >= {"endpoint", "data", "json", "headers"}
    assert HttpOperator(task_id="t", endpoint="x", method="GET").execute({}) == "hello"
    bad = HttpOperator(task_id="t2", endpoint="x", method="GET", response_check=lambda r: "nope" in r.text)
    with pytest.raises(Exception, match="response_check returned False"):
        bad.execute({})
    assert server.requests


def test_retries_on_503_then_success(serve, monkeypatch):
    calls = []

    def flaky(h):
        calls.append(1)
        return (503, {}, "busy") if len(calls) <= 2 else (200, {}, "done")

    server = serve(flaky)
    _conn(monkeypatch, server.port)
    assert HttpHook("GET").run("x").text == "done"
    assert len(calls) == 3
    # Retries are bounded: always 503 gives up with the status, not a hang.
    calls.clear()
    server2 = serve(lambda h: (calls.append(1), (503, {}, "busy"))[1])
    _conn(monkeypatch, server2.port)
    with pytest.raises(HttpException, match="503"):
        HttpHook("GET").run("x")
    assert len(calls) == 4  # 1 + 3 retries


def test_429_is_retried_for_idempotent_methods(serve, monkeypatch):
    calls = []

    def limited(h):
        calls.append(h.command)
        return (429, {}, "slow down") if len(calls) == 1 else (200, {}, "ok")

    server = serve(limited)
    _conn(monkeypatch, server.port)
    assert HttpHook("PUT").run("x", json={"v": 1}).text == "ok"
    assert calls == ["PUT", "PUT"]


def test_post_is_not_retried_unless_asked(serve, monkeypatch):
    calls = []

    def flaky(h):  # every third request succeeds
        calls.append(h.command)
        return (503, {}, "busy") if len(calls) % 3 else (200, {}, "made")

    server = serve(flaky)
    _conn(monkeypatch, server.port)
    with pytest.raises(HttpException, match="503"):
        HttpHook("POST").run("orders", json={"order": 1})
    assert calls == ["POST"]  # once: the server may have acted on it
    assert HttpHook("PATCH").run("orders/1", extra_options={"check_response": False}).status_code == 503
    assert calls == ["POST", "PATCH"]

    calls.clear()
    hook = HttpHook("POST", retry_methods=["post"])
    assert hook.run("orders", json={"order": 2}).text == "made"
    assert calls == ["POST"] * 3
    assert [json.loads(r["body"]) for r in server.requests[-3:]] == [{"order": 2}] * 3

    # The same opt-in from the connection (a comma-separated string or a list).
    calls.clear()
    _conn(monkeypatch, server.port, retry_methods="GET, POST")
    assert HttpHook("POST").run("orders").text == "made"
    assert calls == ["POST"] * 3
    calls.clear()
    with pytest.raises(HttpException, match="503"):
        HttpHook("PUT").run("orders/1")  # retry_methods replaces the default set: PUT is not in it now
    assert calls == ["PUT"]
    with pytest.raises(HttpException, match="unknown HTTP method"):
        HttpHook("POST", retry_methods=["FETCH"]).run("orders")


def test_connection_errors_are_retried_for_every_method(monkeypatch):
    """A refused connection never reached a server, so even a POST is tried again (and fails clearly)."""
    import socket
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _conn(monkeypatch, port)
    seen = []

    def listen_late():
        # Nothing listens for the first attempt; the listener appears while the hook backs off.
        time.sleep(0.25)
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append(self.command)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(201)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        with HTTPServer(("127.0.0.1", port), Handler) as httpd:
            httpd.timeout = 5
            httpd.handle_request()

    thread = threading.Thread(target=listen_late, daemon=True)
    thread.start()
    # 6 retries with backoff 0, 0.4, 0.8, ... s: the listener is up before they run out.
    response = HttpHook("POST", retry=6).run("x", json={"a": 1})
    thread.join(5)
    assert response.status_code == 201 and seen == ["POST"]


def test_timeout(serve, monkeypatch):
    def slow(h):
        time.sleep(1.5)
        return 200, {}, "late"

    server = serve(slow)
    _conn(monkeypatch, server.port, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(HttpException, match="timed out"):
        HttpHook("GET").run("x")
    assert time.monotonic() - started < 1.2
    assert len(server.requests) == 1  # a read timeout is not retried


def test_connection_refused_is_clear(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _conn(monkeypatch, port)
    with pytest.raises(HttpException, match="connection failed"):
        HttpHook("GET", retry=1).run("x")
    ok, message = HttpHook().test_connection()
    assert not ok and "connection failed" in message


def test_self_signed_https_fails_by_default_and_works_with_ca_bundle(serve, monkeypatch, self_signed):
    cert_file, context = self_signed
    server = serve(_ok("secure"), ssl_context=context)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    _conn(monkeypatch, server.port, scheme="https")
    with pytest.raises(HttpException, match="TLS verification failed"):
        HttpHook("GET").run("x")
    _conn(monkeypatch, server.port, scheme="https", ca_bundle=str(cert_file))
    assert HttpHook("GET").run("x").text == "secure"


def test_redirect_to_another_port_drops_credentials(serve, monkeypatch):
    other = serve(_ok("landed"))
    origin = serve(lambda h: (302, {"Location": f"http://127.0.0.1:{other.port}/landing"}, ""))
    _conn(
        monkeypatch,
        origin.port,
        token="tok-secret-123",
        headers={"X-Api-Key": "key-secret-456", "X-Custom-Secret-Ish": "s3cr3t-value", "Accept": "text/plain"},
        secret_headers=["X-Custom-Secret-Ish"],
    )
    response = HttpHook("GET").run("start")
    assert response.text == "landed"
    sent = origin.requests[0]["headers"]
    assert sent["Authorization"] == "Bearer tok-secret-123" and sent["X-Api-Key"] == "key-secret-456"
    got = {k.lower() for k in other.requests[0]["headers"]}
    assert "authorization" not in got and "x-api-key" not in got and "x-custom-secret-ish" not in got
    assert "accept" in got
    # Basic auth is dropped too.
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", f"http://user:password1@127.0.0.1:{origin.port}/http")
    HttpHook("GET").run("start")
    assert "authorization" not in {k.lower() for k in other.requests[-1]["headers"]}


def test_same_origin_redirect_keeps_auth(serve, monkeypatch):
    holder = {}

    def respond(h):
        if h.path == "/start":
            return 302, {"Location": f"http://127.0.0.1:{holder['port']}/end"}, ""
        return 200, {}, "end"

    server = serve(respond)
    holder["port"] = server.port
    _conn(monkeypatch, server.port, token="tok-secret-123")
    HttpHook("GET").run("start")
    assert server.requests[1]["headers"]["Authorization"] == "Bearer tok-secret-123"


def test_logged_response_is_masked_and_truncated(serve, monkeypatch, caplog):
    server = serve(_ok("the token is tok-secret-789 " + "x" * 5000))
    _conn(monkeypatch, server.port, token="tok-secret-789")
    op = HttpOperator(task_id="t", endpoint="x", method="GET", log_response=True)
    with caplog.at_level(logging.INFO, logger="zonda.hooks.http"):
        op.execute({})
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "zonda.hooks.http")
    assert "the token is ***" in logged and "tok-secret-789" not in logged
    assert "more characters]" in logged and len(logged) < 2000
    assert get_masker().redact_text("tok-secret-789") == "***"


def test_sensor(serve, monkeypatch):
    calls = []

    def respond(h):
        calls.append(1)
        return (404, {}, "missing") if len(calls) < 3 else (200, {}, "ready")

    server = serve(respond)
    _conn(monkeypatch, server.port)
    sensor = HttpSensor(
        task_id="s", endpoint="status", poke_interval=0.05, timeout=5, response_check=lambda r: r.text == "ready"
    )
    sensor.execute({})
    assert len(calls) == 3
    server2 = serve(lambda h: (500, {}, "boom"))
    _conn(monkeypatch, server2.port)
    with pytest.raises(Exception, match="HTTP 500"):
        HttpSensor(task_id="s2", endpoint="status", poke_interval=0.05, timeout=5).poke({})


def test_trigger_polls_and_returns_json_safe_payload(serve, monkeypatch):
    calls = []

    def respond(h):
        calls.append(1)
        return (404, {}, "") if len(calls) < 2 else json_body({"ok": True})

    server = serve(respond)
    _conn(monkeypatch, server.port)
    trigger = HttpTrigger(method="GET", endpoint="job", poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    rebuilt = HttpTrigger(**serde.loads(serde.dumps(kwargs)))

    async def first_event():
        async for event in rebuilt.run():
            return event

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success"
    assert json.loads(json.dumps(event.payload)) == event.payload
    response = response_from_payload(event.payload["response"])
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.headers["content-type"] == "application/json"
    assert classpath == "zonda_http.triggers.HttpTrigger"


def test_injected_session_and_test_connection(serve, monkeypatch):
    server = serve(_ok())
    _conn(monkeypatch, server.port)
    session = requests.Session()
    hook = HttpHook("GET", session=session)
    assert hook.get_conn() is session
    assert hook.run("x").status_code == 200
    assert HttpHook().test_connection()[0] is True


def test_manifest_paths_import():
    import importlib

    from zonda_http.manifest import manifest

    for path in [
        manifest["connection_types"][0]["hook"],
        *manifest["operators"],
        *manifest["sensors"],
        *manifest["triggers"],
    ]:
        module, _, name = path.partition(":")
        assert getattr(importlib.import_module(module), name)
