"""The commands of the running system: ``dags trigger | pause | unpause | list-runs | backfill``, ``tasks run |
states-for-dag-run | clear``, ``pools``, and ``zonda standalone`` end to end in a subprocess.

The in-process tests call ``zonda.cli.main`` against a real SQLite metastore in a temp ZONDA_HOME; DAGs are
stored in the metastore the way the DAG processor stores them (serialized, from a parsed file).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from scheduler_helpers import write_dag as add_dag

from zonda.cli import main

PIPELINE = """
from datetime import datetime
from zonda import DAG, Param
from zonda.operators import BashOperator, PythonOperator


def extract(params):
    print("extracting", params["limit"])
    return params["limit"]


with DAG(
    "pipeline",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"limit": Param(3, type="integer", minimum=1)},
    default_args={"retries": 2},
):
    e = PythonOperator(task_id="extract", python_callable=extract)
    load = BashOperator(task_id="load", bash_command="echo loaded {{ ds }}")
    e >> load
"""

RUN_FIELDS = {"run_id", "state", "logical_date", "queued_at", "start_date", "end_date"}
TI_FIELDS = {"task_id", "map_index", "state", "try_number", "start_date", "end_date"}


def store_dags(home: Path) -> None:
    """What the DAG processor does for each DAG of the folder: the dag row and its serialized structure."""
    from zonda.cli._loading import open_metastore
    from zonda.config import load_settings
    from zonda.dagbag import DagBag
    from zonda.runner.store import MetastoreRunStore

    settings = load_settings()
    bag = DagBag.from_settings(settings).collect()
    assert not bag.import_errors, bag.import_errors
    metastore = open_metastore(settings)
    try:
        store = MetastoreRunStore(metastore)
        paused = bool(settings.get("core", "dags_are_paused_at_creation"))
        for dag in bag:
            store.sync_dag(dag, paused_at_creation=paused)
        store.close()
    finally:
        metastore.dispose()


@pytest.fixture
def pipeline(home: Path) -> Path:
    add_dag(home, "pipeline.py", PIPELINE)
    store_dags(home)
    return home


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def query(home: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "zonda.db", timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- dags trigger | list-runs | pause | unpause -----------------------------------------------------------------


def test_trigger_validates_conf_against_params(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "dags", "trigger", "pipeline", "--conf", '{"limit": 0}')
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "limit" in err and "--conf" in err
    assert query(pipeline, "select count(*) from dag_run") == [(0,)]

    code, _, err = run_cli(capsys, "dags", "trigger", "pipeline", "--conf", "[1]")
    assert code == 1 and err.count("\n") == 1


def test_trigger_then_list_runs_json(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "dags",
        "trigger",
        "pipeline",
        "--conf",
        '{"limit": 7}',
        "--logical-date",
        "2024-03-01T06:00:00+00:00",
        "--run-id",
        "r1",
        "-o",
        "json",
    )
    assert code == 0
    created = json.loads(out)
    assert created["run_id"] == "r1" and created["state"] == "queued" and created["conf"] == {"limit": 7}

    code, out, err = run_cli(capsys, "dags", "trigger", "pipeline", "--run-id", "r1")
    assert code == 1 and "already has a run" in err and err.count("\n") == 1

    assert run_cli(capsys, "dags", "trigger", "pipeline")[0] == 0
    code, out, _ = run_cli(capsys, "dags", "list-runs", "pipeline", "--output", "json")
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == 2
    for run in runs:
        assert set(run) >= RUN_FIELDS
        assert run["state"] == "queued" and run["run_type"] == "manual" and run["queued_at"]
        assert run["start_date"] is None and run["end_date"] is None
    r1 = next(r for r in runs if r["run_id"] == "r1")
    assert r1["logical_date"] == "2024-03-01T06:00:00+00:00"
    # A manual run of a cron (trigger) schedule covers the empty interval at its moment, as in Airflow 3.
    assert r1["data_interval_start"] == "2024-03-01T06:00:00+00:00"
    assert r1["data_interval_end"] == "2024-03-01T06:00:00+00:00"

    code, out, _ = run_cli(capsys, "dags", "list-runs", "pipeline", "--state", "success", "-o", "json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run_cli(capsys, "dags", "list-runs", "pipeline")
    assert code == 0 and "r1" in out and "queued" in out

    code, _, err = run_cli(capsys, "dags", "list-runs", "nope")
    assert code == 1 and err.count("\n") == 1 and "zonda dags list" in err


def test_trigger_unknown_dag_is_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "dags", "trigger", "nope")
    assert code == 1 and err.count("\n") == 1 and "no DAG 'nope' in the metastore" in err


def test_pause_and_unpause(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert query(pipeline, "select is_paused from dag where dag_id = 'pipeline'") == [(0,)]
    code, out, _ = run_cli(capsys, "dags", "pause", "pipeline")
    assert code == 0 and "paused" in out
    assert query(pipeline, "select is_paused from dag where dag_id = 'pipeline'") == [(1,)]
    code, _, err = run_cli(capsys, "dags", "trigger", "pipeline")
    assert code == 0 and "paused" in err  # a warning, the run is still queued
    code, out, _ = run_cli(capsys, "dags", "unpause", "pipeline")
    assert code == 0 and "unpaused" in out
    assert query(pipeline, "select is_paused from dag where dag_id = 'pipeline'") == [(0,)]
    code, _, err = run_cli(capsys, "dags", "pause", "nope")
    assert code == 1 and err.count("\n") == 1 and "'nope'" in err


# --- pools ---------------------------------------------------------------------------------------------------


def test_pools_set_list_delete(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "pools", "set", "api", "4", "--description", "API calls")
    assert code == 0 and "created" in out
    code, out, _ = run_cli(capsys, "pools", "set", "api", "6")
    assert code == 0 and "updated" in out
    code, out, _ = run_cli(capsys, "pools", "list", "--output", "json")
    pools = {p["pool"]: p for p in json.loads(out)}
    assert pools["api"]["slots"] == 6 and pools["api"]["description"] == "API calls"
    assert pools["api"]["open_slots"] == 6 and pools["api"]["running"] == 0
    assert "default_pool" in pools
    code, out, _ = run_cli(capsys, "pools", "list")
    assert code == 0 and "api" in out and "default_pool" in out

    code, _, err = run_cli(capsys, "pools", "delete", "default_pool")
    assert code == 1 and err.count("\n") == 1 and "cannot be deleted" in err
    code, _, err = run_cli(capsys, "pools", "set", "api", "-1")
    assert code == 1 and err.count("\n") == 1
    assert run_cli(capsys, "pools", "delete", "api")[0] == 0
    code, _, err = run_cli(capsys, "pools", "delete", "api")
    assert code == 1 and "no pool 'api'" in err
    assert query(home, "select pool from slot_pool") == [("default_pool",)]


# --- backfill, states-for-dag-run ------------------------------------------------------------------------------


def test_backfill_local_then_states_for_dag_run(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "dags", "backfill", "pipeline", "-s", "2024-01-01", "-e", "2024-01-03", "--local")
    assert code == 0, out
    assert "[####################] 3/3 runs done, 0 failed" in out
    rows = query(pipeline, "select run_id, run_type, state from dag_run order by logical_date")
    assert rows == [(f"backfill__2024-01-0{day}T00:00:00+00:00", "backfill", "success") for day in (1, 2, 3)]

    code, out, _ = run_cli(
        capsys, "tasks", "states-for-dag-run", "pipeline", "backfill__2024-01-02T00:00:00+00:00", "--output", "json"
    )
    assert code == 0
    instances = json.loads(out)
    assert [i["task_id"] for i in instances] == ["extract", "load"]
    for inst in instances:
        assert set(inst) >= TI_FIELDS
        assert inst["state"] == "success" and inst["try_number"] == 1 and inst["map_index"] == -1
        assert inst["start_date"] and inst["end_date"]
    code, out, _ = run_cli(capsys, "tasks", "states-for-dag-run", "pipeline", "backfill__2024-01-02T00:00:00+00:00")
    assert code == 0 and "extract" in out and "success" in out

    code, _, err = run_cli(capsys, "tasks", "states-for-dag-run", "pipeline", "nope")
    assert code == 1 and err.count("\n") == 1 and "list-runs" in err


def test_backfill_queues_runs_for_a_scheduler(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "dags", "backfill", "pipeline", "-s", "2024-01-01", "-e", "2024-01-04", "--no-wait")
    assert code == 0
    assert "Queued 4 backfill run(s)" in out and "No scheduler is running" in out
    rows = query(pipeline, "select run_type, state, data_interval_start, data_interval_end from dag_run")
    assert len(rows) == 4 and all(r[:2] == ("backfill", "queued") for r in rows)

    # Again over a wider range: existing intervals are left alone, the new one is queued.
    code, out, _ = run_cli(capsys, "dags", "backfill", "pipeline", "-s", "2024-01-01", "-e", "2024-01-05", "--no-wait")
    assert code == 0 and "Queued 1 backfill run(s)" in out and "4 interval(s) already had a run" in out

    # --wait with nothing running them: bounded by --timeout, one line, exit 1.
    code, out, err = run_cli(
        capsys, "dags", "backfill", "pipeline", "-s", "2024-02-01", "-e", "2024-02-01", "--timeout", "0.3"
    )
    assert code == 1 and "0/1 runs done, 0 failed" in out
    assert err.count("\n") == 1 and "--timeout" in err

    code, _, err = run_cli(capsys, "dags", "backfill", "pipeline", "-s", "2024-01-05", "-e", "2024-01-01")
    assert code == 1 and "after --end-date" in err


def test_progress_bar() -> None:
    from zonda.cli.dags_command import progress_bar

    assert progress_bar(5, 10, 1, width=10) == "[#####.....] 5/10 runs done, 1 failed"
    assert progress_bar(0, 3, 0, width=10) == "[..........] 0/3 runs done, 0 failed"


# --- tasks run | clear ----------------------------------------------------------------------------------------


def test_tasks_run_clear_and_run_again(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "dags", "trigger", "pipeline", "--run-id", "r1", "--conf", '{"limit": 4}')[0] == 0

    # The run was never started by a scheduler: `tasks run` creates its instances and runs the one asked for.
    code, out, _ = run_cli(capsys, "tasks", "run", "pipeline", "extract", "r1")
    assert code == 0, out
    assert "Task pipeline.extract (r1, try 1): success" in out
    rows = query(pipeline, "select task_id, state, try_number, max_tries from task_instance order by task_id")
    assert rows == [("extract", "success", 1, 2), ("load", None, 0, 2)]
    log = pipeline / "logs" / "dag_id=pipeline" / "run_id=r1" / "task_id=extract" / "attempt=1.log"
    assert "extracting 4" in log.read_text()

    # A finished instance is not run again without a clear.
    code, _, err = run_cli(capsys, "tasks", "run", "pipeline", "extract", "r1")
    assert code == 1 and err.count("\n") == 1 and "zonda tasks clear" in err

    # The run is finished (as a scheduler would have ended it) before the clear.
    with sqlite3.connect(pipeline / "zonda.db") as conn:
        conn.execute("update dag_run set state = 'success', end_date = '2024-01-01 00:00:00.000000'")
    code, out, _ = run_cli(capsys, "tasks", "clear", "pipeline", "--task-regex", "^ext", "--downstream", "--yes")
    assert code == 0 and "Cleared 2 task instance(s) in 1 run(s)" in out
    rows = query(pipeline, "select task_id, state, try_number, max_tries from task_instance order by task_id")
    assert rows == [("extract", None, 1, 3), ("load", None, 0, 2)]  # tries kept, retries granted again
    assert query(pipeline, "select state, start_date, end_date from dag_run") == [("queued", None, None)]

    code, out, _ = run_cli(capsys, "tasks", "run", "pipeline", "extract", "r1")
    assert code == 0 and "(r1, try 2): success" in out
    assert (log.parent / "attempt=2.log").exists()
    code, out, _ = run_cli(capsys, "tasks", "run", "pipeline", "load", "r1")
    assert code == 0 and "success" in out

    code, out, _ = run_cli(capsys, "tasks", "states-for-dag-run", "pipeline", "r1", "-o", "json")
    states = {i["task_id"]: (i["state"], i["try_number"]) for i in json.loads(out)}
    assert states == {"extract": ("success", 2), "load": ("success", 1)}


def test_tasks_clear_filters_and_confirmation(
    pipeline: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run_cli(capsys, "dags", "backfill", "pipeline", "-s", "2024-01-01", "-e", "2024-01-02", "--local")
    assert code == 0

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, err = run_cli(capsys, "tasks", "clear", "pipeline")
    assert code == 1 and "Cancelled" in err and out.count("backfill__") == 4  # the instances it would clear
    assert query(pipeline, "select count(*) from task_instance where state is null") == [(0,)]

    # --only-failed: nothing failed, nothing cleared.
    code, out, _ = run_cli(capsys, "tasks", "clear", "pipeline", "--only-failed", "--yes")
    assert code == 0 and "nothing was cleared" in out

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, out, _ = run_cli(capsys, "tasks", "clear", "pipeline", "-t", "^load$", "-s", "2024-01-02", "-e", "2024-01-02")
    assert code == 0 and "Cleared 1 task instance(s) in 1 run(s)" in out
    rows = query(pipeline, "select run_id, task_id from task_instance where state is null")
    assert rows == [("backfill__2024-01-02T00:00:00+00:00", "load")]
    states = query(pipeline, "select run_id, state from dag_run order by logical_date")
    assert [s for _, s in states] == ["success", "queued"]

    code, _, err = run_cli(capsys, "tasks", "clear", "pipeline", "-t", "^zzz", "--yes")
    assert code == 1 and err.count("\n") == 1 and "matches" in err
    code, _, err = run_cli(capsys, "tasks", "run", "pipeline", "nope", "backfill__2024-01-02T00:00:00+00:00")
    assert code == 1 and err.count("\n") == 1 and "no task 'nope'" in err


# --- zonda standalone ------------------------------------------------------------------------------------------

TINY = """
from zonda import DAG
from zonda.operators import PythonOperator


def hello():
    print("hello from standalone")


with DAG("tiny", schedule=None):
    PythonOperator(task_id="hello", python_callable=hello)
"""


def zonda(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One ``zonda`` command in its own process, as a user types it in another terminal."""
    return subprocess.run(
        [sys.executable, "-m", "zonda", *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_standalone_runs_a_triggered_dag_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "standalone_home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "tiny.py").write_text(textwrap.dedent(TINY).lstrip(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(
        ZONDA_HOME=str(home),
        ZONDA__CORE__LOAD_EXAMPLES="false",
        ZONDA__CORE__PARALLELISM="2",
        ZONDA__WEBSERVER__PORT="0",  # any free port: tests run beside other installations
    )
    db = home / "zonda.db"
    out_path = home / "standalone.out"

    def rows(sql: str) -> list[tuple[Any, ...]]:
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the schema is still being created
            return []

    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zonda", "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        assert wait_until(lambda: rows("select dag_id from dag where dag_id = 'tiny'"), 20), out_path.read_text()
        assert rows("select is_paused from dag where dag_id = 'tiny'") == [(1,)]  # new DAGs start paused
        unpause = zonda(env, "dags", "unpause", "tiny")
        assert unpause.returncode == 0, unpause.stderr
        trigger = zonda(env, "dags", "trigger", "tiny", "--run-id", "r1")
        assert trigger.returncode == 0, trigger.stderr
        assert "The scheduler runs it" in trigger.stdout
        done = wait_until(lambda: rows("select state from dag_run where run_id = 'r1'") == [("success",)], 20)
        assert done, (rows("select state from task_instance"), out_path.read_text())
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    output = out_path.read_text()
    assert "LocalExecutor" in output and "web UI:    http://127.0.0.1:" in output
    assert (home / "standalone_admin_password.txt").exists()
    assert "zonda dags trigger" in output and "Zonda standalone stopped." in output
    assert "New DAGs start paused" in output and "zonda dags unpause DAG_ID" in output
    assert rows("select state from job where job_type = 'scheduler'") == [("success",)]
