"""``zonda.client``'s resource methods and the CLI's remote mode against the real server's ``/api/v1`` resources
(Airflow's paths and shapes), on SQLite and PostgreSQL: list, get, pause and unpause DAGs; trigger with conf
(validated against the params), get, list and wait for runs; list task instances and read a try's log;
``zonda dags trigger | list-runs --api-url``. A CI job's whole path, without database access."""

from __future__ import annotations

import json
import time

import pytest
from admin_helpers import store_params_dag
from api_token_helpers import token_for

from zonda.client import TOKEN_ENV, ZondaApiError, ZondaClient

DAG_ID = "params_dag"
CONF = {"target": "warehouse"}


@pytest.fixture(autouse=True)
def _app_clock_is_now(clock) -> None:
    clock.now = time.time()


@pytest.fixture
def server(web, serve):
    store_params_dag(web, DAG_ID)
    return serve(web.app)


def _client(web, server, role: str = "User", **kwargs) -> ZondaClient:
    return ZondaClient(server.url, token_for(web, role), **kwargs)


def test_list_and_get_dags(web, server) -> None:
    with _client(web, server, "Viewer") as client:
        page = client.list_dags()
        assert DAG_ID in [dag.dag_id for dag in page.items]
        assert page.total_entries is None or page.total_entries >= 1
        dag = client.get_dag(DAG_ID)
    assert dag.dag_id == DAG_ID and dag.is_paused is False


def test_pause_and_unpause(web, server) -> None:
    with _client(web, server) as client:
        assert client.pause(DAG_ID).is_paused is True
        assert client.get_dag(DAG_ID).is_paused is True
        assert client.unpause(DAG_ID).is_paused is False


def test_a_viewer_token_cannot_pause_or_trigger(web, server) -> None:
    with _client(web, server, "Viewer") as client:
        for action in (lambda: client.pause(DAG_ID), lambda: client.trigger_dag_run(DAG_ID, CONF)):
            with pytest.raises(ZondaApiError) as caught:
                action()
            assert caught.value.status == 403


def test_trigger_get_list_and_wait_for_a_run(web, server) -> None:
    from zonda.operations.dag_runs_state import set_dag_runs_state

    finished: list[str] = []

    def sleep(seconds: float) -> None:  # instead of a scheduler: the run succeeds while the client waits
        set_dag_runs_state(web.engine, DAG_ID, [run.dag_run_id], "success")
        finished.append(run.dag_run_id)

    with _client(web, server, sleep=sleep) as client:
        run = client.trigger_dag_run(DAG_ID, CONF, dag_run_id="from_the_client")
        assert (run.dag_id, run.dag_run_id, run.state) == (DAG_ID, "from_the_client", "queued")
        assert run.conf["target"] == "warehouse"
        assert client.get_dag_run(DAG_ID, "from_the_client").state == "queued"
        runs = client.list_dag_runs(DAG_ID)
        assert [r.dag_run_id for r in runs.items] == ["from_the_client"]
        done = client.wait_for_dag_run(DAG_ID, "from_the_client", timeout=60, interval=1)
    assert done.state == "success" and done.finished
    assert finished == ["from_the_client"]


def test_a_conf_that_breaks_the_params_is_a_400_naming_the_param(web, server) -> None:
    with _client(web, server) as client, pytest.raises(ZondaApiError) as caught:
        client.trigger_dag_run(DAG_ID, {"target": "warehouse", "count": 0})
    assert caught.value.status == 400
    assert "count" in caught.value.detail


def test_task_instances_and_a_tries_log(web, server, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.cli import main

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", web.store.url)
    assert main(["dags", "test", DAG_ID, "--conf", json.dumps(CONF), "--quiet"]) == 0
    with _client(web, server, "Viewer") as client:
        run = client.list_dag_runs(DAG_ID).items[0]
        instances = client.list_task_instances(DAG_ID, run.dag_run_id).items
        assert [(ti.task_id, ti.state, ti.map_index) for ti in instances] == [("only", "success", -1)]
        log = client.get_log(DAG_ID, run.dag_run_id, "only", instances[0].try_number or 1)
    assert "only" in log or "success" in log.lower()


def test_the_cli_triggers_and_lists_runs_remotely(
    web, server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zonda.cli import main

    monkeypatch.setenv(TOKEN_ENV, token_for(web, "User"))
    args = ["--api-url", server.url, "--output", "json"]
    assert main(["dags", "trigger", DAG_ID, "--conf", json.dumps(CONF), "--run-id", "from_cli", *args]) == 0
    triggered = json.loads(capsys.readouterr().out)
    assert (triggered["run_id"], triggered["state"], triggered["conf"]) == ("from_cli", "queued", CONF)
    assert main(["dags", "list-runs", DAG_ID, *args]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["state"], r["dag_id"]) for r in listed] == [("from_cli", "queued", DAG_ID)]
