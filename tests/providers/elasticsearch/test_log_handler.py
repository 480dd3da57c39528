"""``ElasticsearchTaskLogHandler`` against the real test server: runs made with ``zonda dags test`` ship
structured documents, ``zonda tasks logs`` reads them back in order from the index, and with Elasticsearch
down, rejecting, or gone after the run, every line is still in the local file and shown from there."""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from zonda.cli import main
from zonda.config import load_settings
from zonda.runner.log_handlers import TaskLogKey, load_task_log_handler
from zonda.runner.logs import format_line
from zonda_elasticsearch.local_server import LocalElasticsearch, free_port
from zonda_elasticsearch.log_handler import MAPPINGS, ElasticsearchTaskLogHandler, unshipped_marker

RUN_ID = "test__2024-01-02T00:00:00+00:00"
SECRET = "s3cr3t-Pa55-w0rd"
CHATTY_LINES = 2500  # past the bulk batch (500) and the read page (1000)
FIELDS = {
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "line",
    "level",
    "logger",
    "timestamp",
    "message",
}

DAG_FILE = f"""
from datetime import timedelta
import logging

from zonda import DAG
from zonda.hooks import BaseHook
from zonda.operators import PythonOperator

tries = {{"n": 0}}


def talk():
    tries["n"] += 1
    password = BaseHook.get_connection("warehouse").password
    print("connecting with", password)
    logging.getLogger("etl").info("try %s", tries["n"])
    if tries["n"] == 1:
        raise RuntimeError("first try fails")
    logging.getLogger("etl").warning("done")


def chatty():
    for i in range({CHATTY_LINES}):
        print(f"line {{i:04d}}")


with DAG("es_logs", default_args={{"retries": 1, "retry_delay": timedelta(0)}}):
    PythonOperator(task_id="talk", python_callable=talk) >> PythonOperator(task_id="chatty", python_callable=chatty)
"""


@pytest.fixture
def home(zonda_home: Path, es_conn: str, es_index: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose task logs go to ``es_index`` through ``elasticsearch_default`` (the test server)."""
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "es_logs.py").write_text(textwrap.dedent(DAG_FILE), encoding="utf-8")
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    monkeypatch.setenv("ZONDA__LOGGING__TASK_LOG_HANDLER", "elasticsearch")
    monkeypatch.setenv("ZONDA__LOGGING__ELASTICSEARCH_INDEX", es_index)
    monkeypatch.setenv("ZONDA_CONN_WAREHOUSE", f"postgres://etl:{SECRET}@db.example.com:5432/dw")
    return zonda_home


@pytest.fixture
def es(elasticsearch_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(hosts=[elasticsearch_url])
    yield client
    client.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def log_file(home: Path, task_id: str, attempt: int) -> Path:
    return home / "logs" / "dag_id=es_logs" / f"run_id={RUN_ID}" / f"task_id={task_id}" / f"attempt={attempt}.log"


def documents(es: Elasticsearch, index: str) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Every document of the index by (task, try), in line order."""
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"match_all": {}}, size=10_000, sort=[{"line": "asc"}])["hits"]["hits"]
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for hit in hits:
        doc = hit["_source"]
        found.setdefault((doc["task_id"], doc["try_number"]), []).append(doc)
    return found


def as_lines(docs: list[dict[str, Any]]) -> list[str]:
    text = "\n".join(format_line(d["timestamp"], d["level"], d["logger"], d["message"]) for d in docs)
    return text.splitlines()


def test_a_run_ships_one_structured_document_per_line(home: Path, es: Elasticsearch, es_index: str, capsys) -> None:
    code, out, _ = run(capsys, "dags", "test", "es_logs", "2024-01-02")
    assert code == 0, out

    by_try = documents(es, es_index)
    assert set(by_try) == {("talk", 1), ("talk", 2), ("chatty", 1)}
    for (task_id, try_number), docs in by_try.items():
        assert [d["line"] for d in docs] == list(range(1, len(docs) + 1))  # numbered per try, no gaps
        for doc in docs:
            assert set(doc) == FIELDS
            assert (doc["dag_id"], doc["task_id"], doc["run_id"]) == ("es_logs", task_id, RUN_ID)
            assert (doc["map_index"], doc["try_number"]) == (-1, try_number)
            assert doc["level"] in {"INFO", "WARNING", "ERROR"}
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["timestamp"])
        # The same records as the local file, in the same order.
        assert as_lines(docs) == log_file(home, task_id, try_number).read_text().splitlines()
        assert not unshipped_marker(log_file(home, task_id, try_number)).exists()

    chatty = by_try[("chatty", 1)]
    assert len(chatty) == CHATTY_LINES + 2  # the start and end lines around every print
    assert [d["message"] for d in chatty[1:-1]] == [f"line {i:04d}" for i in range(CHATTY_LINES)]
    assert {d["logger"] for d in chatty[1:-1]} == {"zonda.task.stdout"}

    first, second = by_try[("talk", 1)], by_try[("talk", 2)]
    assert first[0]["message"] == "Starting attempt 1 of 2 for es_logs.talk"
    assert [d["message"] for d in first[1:3]] == ["connecting with ***", "try 1"]
    (failure,) = [d for d in first if d["level"] == "ERROR"]
    assert failure["message"].startswith("Task failed, will retry:\nTraceback (most recent call last):")
    assert failure["message"].endswith("RuntimeError: first try fails")
    assert [(d["level"], d["logger"], d["message"]) for d in second[1:4]] == [
        ("INFO", "zonda.task.stdout", "connecting with ***"),
        ("INFO", "etl", "try 2"),
        ("WARNING", "etl", "done"),
    ]
    everything = str(by_try)
    assert SECRET not in everything  # the connection password never left the worker
    # The shipper's own client requests are neither shipped (no feedback loop) nor in the task's file.
    assert "elastic_transport" not in everything
    assert "elastic_transport" not in log_file(home, "chatty", 1).read_text()

    mapping = es.indices.get_mapping(index=es_index)[es_index]["mappings"]["properties"]
    for field in ("dag_id", "run_id", "line", "timestamp", "try_number"):
        assert mapping[field]["type"] == MAPPINGS["properties"][field]["type"]


def test_tasks_logs_reads_the_index_in_order(home: Path, es_index: str, capsys) -> None:
    assert run(capsys, "dags", "test", "es_logs", "2024-01-02")[0] == 0
    for task_id, try_number in (("chatty", 1), ("talk", 1), ("talk", 2)):
        path = log_file(home, task_id, try_number)
        expected = path.read_text()
        path.unlink()  # whatever is printed now can only come from the index
        argv = ["tasks", "logs", "es_logs", task_id, RUN_ID, "--try", str(try_number)]
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert out == expected
        assert f"from Elasticsearch index '{es_index}' (connection elasticsearch_default)" in err
    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID)  # the latest try by default
    assert code == 0
    assert "try 2 of 2" in err
    assert "{WARNING} etl: done" in out


def test_elasticsearch_down_keeps_every_line_in_the_local_file(home: Path, capsys, monkeypatch) -> None:
    port = free_port()  # nothing listens there: every request is refused
    monkeypatch.setenv("ZONDA_CONN_ELASTICSEARCH_DEFAULT", f"elasticsearch://127.0.0.1:{port}/http")
    code, out, _ = run(capsys, "dags", "test", "es_logs", "2024-01-02")
    assert code == 0, out  # the tasks do not notice
    assert f"DAG run {RUN_ID}: success" in out

    path = log_file(home, "chatty", 1)
    lines = path.read_text().splitlines()
    assert [line.rpartition(": ")[2] for line in lines[1 : CHATTY_LINES + 1]] == [
        f"line {i:04d}" for i in range(CHATTY_LINES)
    ]
    assert "{WARNING} zonda.task_logs: not shipped to Elasticsearch index" in lines[-1]
    assert f"cannot reach Elasticsearch at http://127.0.0.1:{port} (connection 'elasticsearch_default')" in lines[-1]
    marker = unshipped_marker(path)
    assert "not shipped to Elasticsearch index" in marker.read_text()
    # The first attempt waited out the client's retries; the later ones of the run did not try again.
    first = unshipped_marker(log_file(home, "talk", 1)).read_text()
    assert "cannot reach Elasticsearch" in first
    assert "an earlier attempt; not retried for 30 s" not in first
    assert "an earlier attempt; not retried for 30 s" in marker.read_text()

    code, out, err = run(capsys, "tasks", "logs", "es_logs", "chatty", RUN_ID)
    assert code == 0
    assert out.splitlines() == lines
    assert f"from local file {path} (not shipped to Elasticsearch index" in err
    code, out, _ = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID, "--try", "1")
    assert code == 0
    assert "connecting with ***" in out
    assert "RuntimeError: first try fails" in out
    assert SECRET not in out


def test_a_server_gone_after_the_run_falls_back_to_the_file(
    home: Path, tmp_path: Path, es_index: str, capsys, monkeypatch
) -> None:
    """A second, private server: shipped while it ran; stopped, the index cannot be read and the file is used."""
    server = LocalElasticsearch(tmp_path / "private-es").start()
    try:
        monkeypatch.setenv(
            "ZONDA_CONN_ELASTICSEARCH_DEFAULT", server.url.replace("http://", "elasticsearch://") + "/http"
        )
        assert run(capsys, "dags", "test", "es_logs", "2024-01-02")[0] == 0
        path = log_file(home, "talk", 2)
        assert not unshipped_marker(path).exists()
        with Elasticsearch(hosts=[server.url]) as private:
            shipped = documents(private, es_index)
        assert as_lines(shipped[("talk", 2)]) == path.read_text().splitlines()
    finally:
        server.stop()

    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID)
    assert code == 0
    assert out == path.read_text()
    assert f"from local file {path} (Elasticsearch (elasticsearch_default) could not be read: cannot reach" in err
    assert f"{server.url} (connection 'elasticsearch_default')" in err

    path.unlink()
    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: no log for es_logs.talk ({RUN_ID}, try 2): Elasticsearch (elasticsearch_default)")
    assert "does not exist" in err


def test_rejected_documents_mark_the_try_unshipped(home: Path, es: Elasticsearch, es_index: str, capsys) -> None:
    es.indices.create(index=es_index, mappings={"properties": {"timestamp": {"type": "long"}}})
    assert run(capsys, "dags", "test", "es_logs", "2024-01-02")[0] == 0
    path = log_file(home, "talk", 2)
    reason = unshipped_marker(path).read_text()
    assert "lines rejected" in reason
    assert "{WARNING} zonda.task_logs: not shipped" in path.read_text().splitlines()[-1]
    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID)
    assert code == 0
    assert out == path.read_text()
    assert "lines rejected" in err


def test_an_index_without_the_try_falls_back_to_the_file(home: Path, es: Elasticsearch, es_index: str, capsys) -> None:
    assert run(capsys, "dags", "test", "es_logs", "2024-01-02")[0] == 0
    es.indices.delete(index=es_index)
    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID)
    assert code == 0
    assert out == log_file(home, "talk", 2).read_text()
    assert f"(Elasticsearch index '{es_index}' does not exist)" in err
    es.indices.create(index=es_index, mappings=MAPPINGS)
    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", RUN_ID)
    assert code == 0
    assert out == log_file(home, "talk", 2).read_text()
    assert f"(Elasticsearch index '{es_index}' has no lines for it)" in err


def test_a_resumed_try_continues_its_line_numbers(home: Path, es: Elasticsearch, es_index: str) -> None:
    """A try resumed after a deferral appends to its file and numbers on from the index's last line."""
    handler = load_task_log_handler(load_settings())
    assert isinstance(handler, ElasticsearchTaskLogHandler)
    assert (handler.conn_id, handler.index) == ("elasticsearch_default", es_index)
    key = TaskLogKey("es_logs", "waiter", RUN_ID, 4, 1)
    path = handler.local_path(key)
    with handler.capture(key, path):
        logging.getLogger("zonda.task").info("before deferral")
        print("waiting")
    with handler.capture(key, path):
        logging.getLogger("zonda.task").info("resumed")
    docs = documents(es, es_index)[("waiter", 1)]
    assert [(d["line"], d["message"], d["map_index"]) for d in docs] == [
        (1, "before deferral", 4),
        (2, "waiting", 4),
        (3, "resumed", 4),
    ]
    task_log = handler.read(key)
    assert task_log.lines == path.read_text().splitlines()
    assert task_log.source.startswith("Elasticsearch index")


def test_a_worker_ships_its_try(home: Path, es: Elasticsearch, es_index: str, capsys) -> None:
    """``tasks run`` runs the try as a scheduler's worker does (its own handler, built from the settings)."""
    from zonda.cli._loading import open_metastore
    from zonda.dagbag import DagBag
    from zonda.runner.store import MetastoreRunStore

    settings = load_settings()
    metastore = open_metastore(settings)
    try:
        store = MetastoreRunStore(metastore)
        for dag in DagBag.from_settings(settings).collect():
            store.sync_dag(dag)  # what the DAG processor does
        store.close()
    finally:
        metastore.dispose()
    assert run(capsys, "dags", "trigger", "es_logs", "--run-id", "r1")[0] == 0
    code, out, _ = run(capsys, "tasks", "run", "es_logs", "talk", "r1")
    assert code == 1  # the first try fails, by design of the DAG
    assert "(r1, try 1): up_for_retry" in out

    docs = documents(es, es_index)[("talk", 1)]
    assert {d["run_id"] for d in docs} == {"r1"}
    assert [d["line"] for d in docs] == list(range(1, len(docs) + 1))
    local = home / "logs" / "dag_id=es_logs" / "run_id=r1" / "task_id=talk" / "attempt=1.log"
    assert as_lines(docs) == local.read_text().splitlines()
    assert "connecting with ***" in local.read_text()
    expected = local.read_text()
    local.unlink()
    code, out, err = run(capsys, "tasks", "logs", "es_logs", "talk", "r1")
    assert code == 0
    assert out == expected
    assert "from Elasticsearch index" in err


def test_tasks_test_ships_nothing(home: Path, es: Elasticsearch, es_index: str, capfd) -> None:
    """``tasks test`` records nothing, so its lines stay in its temporary file (and on the console)."""
    assert main(["tasks", "test", "es_logs", "chatty", "2024-01-02"]) == 0
    assert "line 2499" in capfd.readouterr().out
    assert not es.indices.exists(index=es_index)


def test_the_web_task_page_and_the_api_read_a_try_from_the_index(home: Path, es_index: str, capsys) -> None:
    """With the local files gone, the task page's log window, its search, the download and the REST API's log
    endpoint all come from the index, masked, through the same handler the CLI uses."""
    import re as regex

    from zonda.metastore import Metastore
    from zonda.operations.users import create_user
    from zonda.web import create_app

    assert run(capsys, "dags", "test", "es_logs", "2024-01-02")[0] == 0
    expected = {attempt: log_file(home, "talk", attempt).read_text().splitlines() for attempt in (1, 2)}
    for attempt in (1, 2):
        log_file(home, "talk", attempt).unlink()
    log_file(home, "chatty", 1).unlink()

    settings = load_settings(home)
    store = Metastore(settings.get("database", "sql_alchemy_conn"))
    try:
        create_user(store.engine, "reader", "Viewer", "a-long-test-password", actor="(test)")
        app = create_app(settings, engine=store.engine)
        client = app.test_client()
        login_page = client.get("/login").text
        csrf = regex.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
        form = {"username": "reader", "password": "a-long-test-password", "csrf_token": csrf}
        assert client.post("/login", data=form).status_code == 303

        base = f"/dags/es_logs/runs/{RUN_ID}/tasks/talk/logs"
        for attempt in (1, 2):
            window = client.get(f"{base}/{attempt}?start=0&count=5000").get_json()
            assert window["missing"] is None and window["lines"] == expected[attempt]
            assert es_index in window["source"]
        found = client.get(f"{base}/2?q=done").get_json()
        assert found["hits"] and all("done" in expected[2][number] for number in found["hits"])
        download = client.get(f"{base}/1/download")
        assert download.status_code == 200 and download.get_data(as_text=True).splitlines() == expected[1]
        assert SECRET not in download.get_data(as_text=True) and "connecting with ***" in download.get_data(
            as_text=True
        )

        chatty = client.get(f"/dags/es_logs/runs/{RUN_ID}/tasks/chatty/logs/1").get_json()  # the last screenful
        assert chatty["total"] == CHATTY_LINES + 2 and chatty["lines"][-2].endswith(f"line {CHATTY_LINES - 1:04d}")

        api = client.get(
            f"/api/v1/dags/es_logs/dagRuns/{RUN_ID}/taskInstances/talk/logs/2", headers={"Accept": "text/plain"}
        )
        assert api.status_code == 200 and api.get_data(as_text=True).splitlines() == expected[2]
    finally:
        store.dispose()
