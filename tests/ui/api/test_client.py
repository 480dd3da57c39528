"""``zonda.client`` against the real web server (waitress on a loopback port), on SQLite and PostgreSQL: version and
health, the token from the argument or ``ZONDA_API_TOKEN``, errors as one ``ZondaApiError`` with the server's
title/detail/status, a bounded wait that honours ``Retry-After``, and the CLI's remote mode refusing a bad token.

The resource methods (DAGs, runs, task instances, logs) are tested in ``test_client_resources.py``, against the
``/api/v1`` resources."""

from __future__ import annotations

import socket
import time

import pytest
from api_token_helpers import token_for

from zonda.client import TOKEN_ENV, ZondaApiError, ZondaClient
from zonda.version import __version__


@pytest.fixture(autouse=True)
def _app_clock_is_now(clock) -> None:
    """Tokens expire by the metastore's time: the app's clock starts at the real now."""
    clock.now = time.time()


@pytest.fixture
def server(web, serve):
    return serve(web.app)


def test_version_and_health_with_a_token_from_the_argument(web, server) -> None:
    with ZondaClient(server.url, token_for(web, "Viewer")) as client:
        assert client.version() == __version__
        assert "metastore" in client.health()


def test_the_token_comes_from_the_environment_and_a_trailing_api_path_is_accepted(
    web, server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, token_for(web, "Op"))
    with ZondaClient(server.url + "/api/v1/") as client:
        assert client.version() == __version__


def test_health_needs_no_token_but_the_api_does(server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with ZondaClient(server.url) as client:
        assert "metastore" in client.health()
        with pytest.raises(ZondaApiError) as caught:
            client.version()
    assert caught.value.status == 401
    assert caught.value.title == "Unauthorized"
    assert "Authorization header" in caught.value.detail


def test_a_revoked_token_raises_the_servers_problem(web, server) -> None:
    from zonda.operations.api_tokens import create_token, revoke_token

    made = create_token(web.engine, "admin", days=1, actor="(test)")
    revoke_token(web.engine, made.record.id, actor="(test)")
    with ZondaClient(server.url, made.token) as client, pytest.raises(ZondaApiError) as caught:
        client.version()
    error = caught.value
    assert (error.status, error.title) == (401, "Unauthorized")
    assert f"{made.record.id} was revoked" in error.detail
    assert made.token not in str(error)


def test_an_unknown_dag_is_a_404_error(web, server) -> None:
    with ZondaClient(server.url, token_for(web, "Viewer")) as client, pytest.raises(ZondaApiError) as caught:
        client.get_dag("no_such_dag")
    assert caught.value.status == 404


def test_no_server_and_a_bad_url_are_the_same_exception_without_a_status() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ZondaClient(f"http://127.0.0.1:{port}", "zonda_x", timeout=5) as client, pytest.raises(ZondaApiError) as c:
        client.version()
    assert c.value.status is None and c.value.title == "No answer"
    with pytest.raises(ZondaApiError, match="not an http\\(s\\) URL"):
        ZondaClient("127.0.0.1:8080")


def test_waiting_is_bounded_and_waits_out_the_rate_limit(make_web_app, serve, clock) -> None:
    web = make_web_app({("api", "rate_limit_per_minute"): 1})
    server = serve(web.app)
    slept: list[float] = []
    elapsed = [0.0]

    def sleep(seconds: float) -> None:  # the client's wait moves the server's clock too: no real sleeping
        slept.append(seconds)
        elapsed[0] += seconds
        clock.advance(seconds)

    with ZondaClient(server.url, token_for(web, "Viewer"), sleep=sleep, clock=lambda: elapsed[0]) as client:
        assert client.version() == __version__
        with pytest.raises(ZondaApiError) as caught:
            client.wait_for_dag_run("any", "run", timeout=45, interval=5)
    assert caught.value.title == "Timeout" and caught.value.status is None
    assert "after 45 s" in caught.value.detail
    assert slept == [45], "Retry-After (60 s) is waited, cut to the time left"


def test_the_cli_remote_mode_reports_a_bad_token_in_one_line(
    server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zonda.cli import main

    monkeypatch.setenv(TOKEN_ENV, "zonda_000000000000_" + "A" * 43)
    assert main(["dags", "list-runs", "any", "--api-url", server.url]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: HTTP 401 Unauthorized: the bearer token is not valid")
    assert "\n" not in err
