"""The example DAG ``es_search_pipeline`` against the test server, and the local server ``zonda standalone``
starts for it when no connection is configured."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zonda.dagbag import DagBag
from zonda.testing import run_dag
from zonda_elasticsearch.example_dags.es_search_pipeline import BOOKS, INDEX
from zonda_elasticsearch.local_server import STANDALONE_CONN_ID, standalone_service

pytestmark = pytest.mark.elasticsearch


def _delete_index(url: str) -> None:
    with contextlib.suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(f"{url}/{INDEX}", method="DELETE"), timeout=5).close()


def test_example_dags_of_providers_load_with_the_core_examples(zonda_home: Path) -> None:
    bag = DagBag(None, include_examples=True).collect()
    assert "es_search_pipeline" in bag.dags and "user_processing" in bag.dags
    assert not bag.import_errors, bag.import_errors
    # dags test finds it too (the providers' examples are looked at after the core's)
    assert "es_search_pipeline" in DagBag(None, include_examples=True).collect_for("es_search_pipeline").dags


def test_es_search_pipeline_indexes_searches_and_summarizes(
    elasticsearch_url: str, es_conn: str, zonda_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _delete_index(elasticsearch_url)
    dag = DagBag(None, include_examples=True).collect_for("es_search_pipeline").get_dag("es_search_pipeline")
    try:
        for attempt in ("first", "re-run"):
            result = run_dag(dag)
            assert result.state == "success", (attempt, result.states())
            summary = result.ti("summarize").xcom_pull(task_ids="summarize")
            assert summary["books"] == len(BOOKS)  # the re-run replaced the documents (ids from isbn)
            assert summary["python_books"] == [  # newest first, ties by isbn
                "Python for Data Analysis (2022)",
                "Fluent Python (2022)",
                "Learning Python (2013)",
            ]
            assert summary["genres"] == {
                "data": {"books": 3, "avg_pages": 547},
                "programming": {"books": 2, "avg_pages": 1330},
                "fiction": {"books": 2, "avg_pages": 576},
            }
            assert summary["published_since_2020"] == 3
    finally:
        _delete_index(elasticsearch_url)


def test_standalone_service_starts_a_server_only_without_a_connection(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zonda.config import load_settings

    monkeypatch.delenv("ZONDA_CONN_ELASTICSEARCH_DEFAULT", raising=False)
    settings = load_settings()
    service = standalone_service(settings)
    assert service is not None
    with service as description:
        uri = os.environ["ZONDA_CONN_ELASTICSEARCH_DEFAULT"]
        assert STANDALONE_CONN_ID in description and str(zonda_home / "elasticsearch") in description
        url = uri.replace("elasticsearch://", "http://").removesuffix("/http")
        with urllib.request.urlopen(url + "/", timeout=5) as response:
            assert json.loads(response.read())["tagline"] == "You Know, for Search"
        # configured now (from the environment): a second standalone would start nothing
        assert standalone_service(settings) is None
    assert "ZONDA_CONN_ELASTICSEARCH_DEFAULT" not in os.environ
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/", timeout=2)


def _wait_until(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


@pytest.mark.slow
def test_zonda_standalone_runs_es_search_pipeline_on_its_own_server(tmp_path: Path) -> None:
    """The README's main job with the example DAGs: the scheduled es_search_pipeline run succeeds against the
    server standalone started, which stops with it."""
    home = tmp_path / "standalone_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA__", "ZONDA_CONN_"))}
    env.update(ZONDA_HOME=str(home), ZONDA__CORE__PARALLELISM="4", ZONDA__WEBSERVER__PORT="0")  # any free port
    db = home / "zonda.db"
    out_path = home / "standalone.out"

    def rows(sql: str) -> list[tuple[Any, ...]]:
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []

    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zonda", "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # New DAGs, the examples too, start paused: unpause it as the banner tells a user to.
        assert _wait_until(lambda: rows("select dag_id from dag where dag_id = 'es_search_pipeline'"), 60)
        unpause = subprocess.run(
            [sys.executable, "-m", "zonda", "dags", "unpause", "es_search_pipeline"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert unpause.returncode == 0, unpause.stderr
        done = _wait_until(
            lambda: (
                rows("select state from dag_run where dag_id = 'es_search_pipeline'") in ([("success",)], [("failed",)])
            ),
            90,
        )
        output = out_path.read_text()
        states = rows("select task_id, state from task_instance where dag_id = 'es_search_pipeline'")
        assert done and rows("select state from dag_run where dag_id = 'es_search_pipeline'") == [("success",)], (
            states,
            output[-3000:],
        )
        assert "Elasticsearch-compatible server (noida-db) on http://127.0.0.1:" in output
        logs = list((home / "logs").glob("dag_id=es_search_pipeline/*/task_id=summarize/attempt=1.log"))
        assert logs and "books indexed in zonda-example-books" in logs[0].read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, out_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
