"""An ``http://`` connection talks plain HTTP, an ``https://`` one talks verified TLS: every way of writing a
connection, through the hook, the operator, the sensor and the async trigger, against real loopback servers.

The scheme comes from (first match): a host that is itself a URL; the ``schema`` field when it says http or
https; the conn type ``http`` / ``https`` (a URI's scheme), whose ``schema`` is then a path; else https.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from zonda_http.hooks import HttpException, HttpHook
from zonda_http.operators import HttpOperator
from zonda_http.sensors import HttpSensor
from zonda_http.triggers import HttpTrigger

pytestmark = pytest.mark.usefixtures("zonda_home")


def echo_path(handler: Any) -> tuple[int, dict[str, str], str]:
    return 200, {"Content-Type": "application/json"}, json.dumps({"path": handler.path})


def _first_event(trigger: HttpTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded no event")

    return asyncio.run(first())


def _via_hook() -> str:
    return HttpHook("GET").run("ping").text


def _via_operator() -> str:
    return HttpOperator(task_id="call", endpoint="ping", method="GET").execute({})


def _via_sensor() -> str:
    seen: list[str] = []
    sensor = HttpSensor(task_id="wait", endpoint="ping", response_check=lambda r: bool(seen.append(r.text)) or True)
    assert sensor.poke({}) is True
    return seen[0]


def _via_trigger() -> str:
    event = _first_event(HttpTrigger(method="GET", endpoint="ping"))
    assert event["status"] == "success", event
    return event["response"]["text"]


CALLERS: dict[str, Callable[[], str]] = {
    "hook": _via_hook,
    "operator": _via_operator,
    "sensor": _via_sensor,
    "trigger": _via_trigger,
}

#: (connection text with {port}, the path the server sees for endpoint "ping", basic-auth user or None)
PLAIN_HTTP_CONNECTIONS = {
    "uri": ("http://127.0.0.1:{port}", "/ping", None),
    "uri-uppercase-scheme": ("HTTP://127.0.0.1:{port}", "/ping", None),
    "uri-with-path": ("http://127.0.0.1:{port}/api/v1", "/api/v1/ping", None),
    "uri-with-path-and-base-path": ("http://127.0.0.1:{port}/api?base_path=v2", "/api/v2/ping", None),
    "uri-with-credentials": ("http://user:pw%40x@127.0.0.1:{port}", "/ping", "user:pw@x"),
    "uri-with-schema-http": ("http://127.0.0.1:{port}/http", "/ping", None),
    "json-schema-http": (
        '{{"conn_type": "http", "host": "127.0.0.1", "port": {port}, "schema": "http"}}',
        "/ping",
        None,
    ),
    "json-type-http-no-schema": ('{{"conn_type": "http", "host": "127.0.0.1", "port": {port}}}', "/ping", None),
    "json-other-type-schema-http": (
        '{{"conn_type": "my_api", "host": "127.0.0.1", "port": {port}, "schema": "HTTP"}}',
        "/ping",
        None,
    ),
    "json-host-is-a-url": ('{{"conn_type": "my_api", "host": "http://127.0.0.1:{port}/base"}}', "/base/ping", None),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("form", sorted(PLAIN_HTTP_CONNECTIONS))
def test_an_http_connection_talks_plain_http(serve, monkeypatch, form: str, caller: str) -> None:
    server = serve(echo_path)
    text, path, user = PLAIN_HTTP_CONNECTIONS[form]
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", text.format(port=server.port))
    assert json.loads(CALLERS[caller]()) == {"path": path}
    headers = server.requests[0]["headers"]
    if user is None:
        assert "Authorization" not in headers
    else:
        assert headers["Authorization"] == "Basic " + base64.b64encode(user.encode()).decode()


#: https connections as text with {port}; {extra} is where the extras go.
TLS_CONNECTIONS = {
    "uri": "https://127.0.0.1:{port}{extra}",
    "uri-with-path": "https://127.0.0.1:{port}/api{extra}",
    "uri-with-credentials": "https://user:pw@127.0.0.1:{port}{extra}",
    "json-schema-https": '{{"conn_type": "http", "host": "127.0.0.1", "port": {port}, "schema": "https"{extra}}}',
    "json-type-https": '{{"conn_type": "https", "host": "127.0.0.1", "port": {port}{extra}}}',
    "json-other-type-no-schema": '{{"conn_type": "my_api", "host": "127.0.0.1", "port": {port}{extra}}}',
}


def _tls_connection(form: str, port: int, ca: Path | None) -> str:
    """The connection, with no retries (a failed handshake is retried otherwise) and the CA bundle if given."""
    text = TLS_CONNECTIONS[form]
    extra = {"retries": "0"} if ca is None else {"retries": "0", "ca_bundle": str(ca)}
    if text.startswith("{"):
        return text.format(port=port, extra=f', "extra": {json.dumps(extra)}')
    return text.format(port=port, extra="?" + urlencode(extra))


@pytest.fixture
def no_ca_from_environment(monkeypatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_ca_from_environment")
@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("form", sorted(TLS_CONNECTIONS))
def test_an_https_connection_talks_verified_tls(serve, monkeypatch, self_signed, form: str, caller: str) -> None:
    cert_file, context = self_signed
    server = serve(lambda h: (200, {}, "secure"), ssl_context=context)
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", _tls_connection(form, server.port, None))
    with pytest.raises(Exception, match="TLS verification failed") as failed:
        CALLERS[caller]() if caller != "trigger" else _raise_trigger_error()
    assert "ca_bundle" in str(failed.value)
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", _tls_connection(form, server.port, cert_file))
    assert CALLERS[caller]() == "secure"


def _raise_trigger_error() -> None:
    event = _first_event(HttpTrigger(method="GET", endpoint="ping"))
    if event["status"] == "error":
        raise HttpException(event["message"])


@pytest.mark.usefixtures("no_ca_from_environment")
@pytest.mark.parametrize("caller", ["hook", "trigger"])
def test_https_to_a_plain_http_server_says_to_write_http(serve, monkeypatch, caller: str) -> None:
    server = serve(echo_path)
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", f"https://127.0.0.1:{server.port}?retries=0")
    with pytest.raises(HttpException, match="does not speak TLS") as failed:
        _via_hook() if caller == "hook" else _raise_trigger_error()
    assert "http://host:port" in str(failed.value) and "ca_bundle" not in str(failed.value)


def test_a_schema_that_is_no_scheme_on_another_conn_type_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("ZONDA_CONN_HTTP_DEFAULT", '{"conn_type": "my_api", "host": "127.0.0.1", "schema": "api"}')
    with pytest.raises(HttpException, match="schema 'api' is not a scheme; set it to http or https"):
        _via_hook()
