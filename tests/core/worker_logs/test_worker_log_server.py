"""The worker log server over real HTTP on loopback: only short-lived signed requests for a log inside the
folder are answered, and the log-reading operation falls back to it when the log is not local."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zonda.config import load_settings
from zonda.exceptions import TaskLogNotFound
from zonda.operations.logs import LogTry, read_log
from zonda.runner.log_handlers import FileTaskLogHandler, TaskLogKey
from zonda.worker_logs.client import fetch_log
from zonda.worker_logs.paths import relative_log_path
from zonda.worker_logs.server import RunningLogServer, start_log_server
from zonda.worker_logs.signing import InvalidToken, check_token, make_token, signing_key

KEY_A = "a" * 20 + "-worker-log-secret-key-one"
KEY_B = "b" * 20 + "-worker-log-secret-key-two"
LOG_KEY = TaskLogKey("etl", "load", "manual__2024-01-01T00:00:00+00:00", -1, 2)


def _settings(home: Path, secret: str) -> Any:
    environ = {
        "ZONDA__WEBSERVER__SECRET_KEY": secret,
        "ZONDA__CELERY__WORKER_LOG_SERVER_HOST": "127.0.0.1",
        "ZONDA__CELERY__WORKER_LOG_SERVER_PORT": "0",
    }
    return load_settings(home, environ)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, RunningLogServer]]:
    """A worker's home with one try's log, and its running log server."""
    home = tmp_path_factory.mktemp("worker_home")
    settings = _settings(home, KEY_A)
    path = Path(settings.log_folder) / relative_log_path(LOG_KEY)
    path.parent.mkdir(parents=True)
    path.write_text("line one\nline two\n", encoding="utf-8")
    (Path(settings.log_folder).parent / "secret.log").write_text("outside the log folder\n", encoding="utf-8")
    server = start_log_server(settings)
    try:
        yield settings, server
    finally:
        server.stop()


def _get(address: str, path: str, token: str | None) -> tuple[int, str]:
    host, port = address.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_token_allows_one_path_for_under_a_minute() -> None:
    key = b"k" * 32
    token = make_token(key, "a/attempt=1.log", now=1000)
    check_token(key, token, "a/attempt=1.log", now=1010)
    with pytest.raises(InvalidToken, match="expired"):
        check_token(key, token, "a/attempt=1.log", now=1031)
    with pytest.raises(InvalidToken, match="another file"):
        check_token(key, token, "b/attempt=1.log", now=1010)
    with pytest.raises(InvalidToken, match="signature"):
        check_token(b"x" * 32, token, "a/attempt=1.log", now=1010)
    payload, _, signature = token.partition(".")
    with pytest.raises(InvalidToken, match="signature"):
        check_token(key, payload[:-2] + "xx." + signature, "a/attempt=1.log", now=1010)
    with pytest.raises(InvalidToken, match="longer than"):
        check_token(key, make_token(key, "a/attempt=1.log", now=2000), "a/attempt=1.log", now=1000)


def test_the_server_answers_a_signed_request_only(worker: tuple[Any, RunningLogServer]) -> None:
    settings, server = worker
    relative = relative_log_path(LOG_KEY)
    key = signing_key(settings)
    url = "/log/" + relative.replace("+", "%2B")
    assert _get(server.address, url, make_token(key, relative)) == (200, "line one\nline two\n")
    assert _get(server.address, url, None)[0] == 403
    assert _get(server.address, url, make_token(key, relative, now=0))[0] == 403  # expired
    assert _get(server.address, url, make_token(b"another installation", relative))[0] == 403
    missing = relative.replace("attempt=2", "attempt=3")
    assert _get(server.address, "/log/" + missing, make_token(key, missing))[0] == 404


@pytest.mark.parametrize("path", ["../secret.log", "..%2Fsecret.log", "%2Fetc%2Fpasswd.log", "a/./b.log", "a.txt"])
def test_the_server_refuses_paths_outside_the_folder(worker: tuple[Any, RunningLogServer], path: str) -> None:
    settings, server = worker
    from urllib.parse import unquote

    status, body = _get(server.address, "/log/" + path, make_token(signing_key(settings), unquote(path)))
    assert status == 400, body
    assert "outside the log folder" not in body


def test_reading_falls_back_to_the_workers_log_server(worker: tuple[Any, RunningLogServer], tmp_path: Path) -> None:
    """The reader's home has no local copy: the same operation every reader calls fetches it from the worker."""
    _, server = worker
    reader = _settings(tmp_path, KEY_A)
    handler = FileTaskLogHandler(reader)
    log_try = LogTry(*LOG_KEY[:4], try_number=2, tries=2, state="success", log_server=server.address)
    task_log = read_log(handler, log_try)
    assert task_log.lines == ["line one", "line two"]
    assert task_log.source == f"worker log server {server.address}"
    with pytest.raises(TaskLogNotFound, match="does not exist"):  # no server recorded: the local miss, as before
        read_log(handler, LogTry(*LOG_KEY[:4], try_number=2, tries=2, state="success"))


def test_a_reader_with_another_secret_key_is_told_why(worker: tuple[Any, RunningLogServer], tmp_path: Path) -> None:
    _, server = worker
    with pytest.raises(TaskLogNotFound, match=r"answered 403 .*secret_key the same on every machine"):
        fetch_log(_settings(tmp_path, KEY_B), server.address, LOG_KEY)


def test_a_worker_that_is_gone_is_a_clear_miss(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KEY_A)
    server = start_log_server(settings)
    address = server.address
    server.stop()
    with pytest.raises(TaskLogNotFound, match="cannot be reached"):
        fetch_log(settings, address, LOG_KEY)
