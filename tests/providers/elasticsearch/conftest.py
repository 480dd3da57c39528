"""An Elasticsearch server for the elasticsearch provider tests, started once per test session.

Where a Docker engine answers, the provider's own ``docker-compose.yml`` brings up real Elasticsearch through
pytest-docker (security off, so the tests see the same plain-HTTP server as below). Without Docker — as on this
project's CI machine — the tests start ``noida-db``, a local server that speaks the Elasticsearch REST protocol,
on a free loopback port. ``ZONDA_TEST_ELASTICSEARCH_URL`` points the tests at a server you already run.
A missing server is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

COMPOSE_FILE = Path(__file__).parents[3] / "providers" / "elasticsearch" / "docker-compose.yml"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    """pytest-docker's hook: the provider's compose file."""
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return "zonda-elasticsearch-tests"


@pytest.fixture(scope="session")
def elasticsearch_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a running Elasticsearch-compatible server."""
    given = os.environ.get("ZONDA_TEST_ELASTICSEARCH_URL")
    if given:
        if not _answers(given):
            pytest.fail(f"ZONDA_TEST_ELASTICSEARCH_URL={given} does not answer")
        yield given.rstrip("/")
        return
    if _docker_available():
        services = request.getfixturevalue("docker_services")
        port = services.port_for("elasticsearch", 9200)
        url = f"http://127.0.0.1:{port}"
        services.wait_until_responsive(check=lambda: _answers(url), timeout=180.0, pause=1.0)
        yield url
        return
    from zonda_elasticsearch.local_server import LocalElasticsearch, LocalServerError

    try:
        server = LocalElasticsearch(tmp_path_factory.mktemp("noida-es")).start()
    except LocalServerError as exc:
        pytest.fail(f"no Elasticsearch server for the tests: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def es_index(elasticsearch_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique index name for one test; the index is deleted afterwards if the test created it."""
    name = f"zonda-test-{request.node.name.lower()}-{time.monotonic_ns()}"
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:200]
    yield name
    req = urllib.request.Request(f"{elasticsearch_url}/{name}", method="DELETE")
    with contextlib.suppress(OSError):
        urllib.request.urlopen(req, timeout=5).close()


@pytest.fixture
def es_conn(elasticsearch_url: str, zonda_home, monkeypatch: pytest.MonkeyPatch) -> str:
    """``elasticsearch_default`` pointing at the test server (through ZONDA_CONN_ELASTICSEARCH_DEFAULT)."""
    uri = elasticsearch_url.replace("http://", "elasticsearch://", 1) + "/http"  # schema field = scheme
    monkeypatch.setenv("ZONDA_CONN_ELASTICSEARCH_DEFAULT", uri)
    return "elasticsearch_default"
