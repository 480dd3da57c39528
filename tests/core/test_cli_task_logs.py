"""``zonda tasks logs DAG_ID TASK_ID RUN_ID [--try N] [--map-index N]`` with the built-in file handler, after
runs made by ``zonda dags test`` (in-process CLI, temp ZONDA_HOME, SQLite)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.cli import main

RUN_ID = "test__2024-01-02T00:00:00+00:00"

DAGS = """
from datetime import timedelta
import logging

from zonda import DAG, task
from zonda.operators import PythonOperator

attempts = {"n": 0}


def flaky():
    attempts["n"] += 1
    print("attempt body", attempts["n"])
    if attempts["n"] == 1:
        raise RuntimeError("first try fails")
    logging.getLogger("etl").warning("second try works")


with DAG("retrying", default_args={"retries": 1, "retry_delay": timedelta(0)}):
    PythonOperator(task_id="flaky", python_callable=flaky)


@task
def double(x):
    print("doubling", x)
    return 2 * x


with DAG("mapped"):
    double.expand(x=[1, 2, 3])
"""


@pytest.fixture
def home(home: Path) -> Path:
    """The shared home, with this module's DAGs."""
    (home / "dags" / "dags.py").write_text(textwrap.dedent(DAGS), encoding="utf-8")
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def attempt_file(home: Path, dag_id: str, task_id: str, attempt: int, map_index: int = -1) -> Path:
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={RUN_ID}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    return folder / f"attempt={attempt}.log"


def test_latest_try_by_default_and_each_try_on_request(home: Path, capsys) -> None:
    assert run(capsys, "dags", "test", "retrying", "2024-01-02")[0] == 0

    code, out, err = run(capsys, "tasks", "logs", "retrying", "flaky", RUN_ID)
    assert code == 0
    assert out.splitlines() == attempt_file(home, "retrying", "flaky", 2).read_text().splitlines()
    assert "Starting attempt 2 of 2 for retrying.flaky" in out.splitlines()[0]
    assert "{INFO} zonda.task.stdout: attempt body 2" in out
    assert "{WARNING} etl: second try works" in out
    assert "{INFO} zonda.task: Attempt ended: success after " in out.splitlines()[-1]
    assert "try 2 of 2" in err and "local file" in err and "attempt=2.log" in err

    code, out, err = run(capsys, "tasks", "logs", "retrying", "flaky", RUN_ID, "--try", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines == attempt_file(home, "retrying", "flaky", 1).read_text().splitlines()
    assert "attempt body 1" in lines[1]
    assert any("Task failed, will retry" in line for line in lines)
    assert "RuntimeError: first try fails" in out  # the traceback lines, in place
    assert "try 1 of 2" in err


def test_mapped_instances_need_their_map_index(home: Path, capsys) -> None:
    assert run(capsys, "dags", "test", "mapped", "2024-01-02")[0] == 0

    code, out, _ = run(capsys, "tasks", "logs", "mapped", "double", RUN_ID, "--map-index", "1")
    assert code == 0
    assert "doubling 2" in out
    assert out.splitlines() == attempt_file(home, "mapped", "double", 1, map_index=1).read_text().splitlines()

    code, out, err = run(capsys, "tasks", "logs", "mapped", "double", RUN_ID)
    assert code == 1
    assert out == ""
    assert err.strip() == (
        f"error: run '{RUN_ID}' has no instance mapped.double; its map indexes are 0, 1, 2: pass --map-index"
    )


def test_unknown_run_task_and_try_are_one_line_errors(home: Path, capsys) -> None:
    assert run(capsys, "dags", "test", "retrying", "2024-01-02")[0] == 0

    code, out, err = run(capsys, "tasks", "logs", "retrying", "flaky", "manual__nope")
    assert (code, out) == (1, "")
    assert err.startswith("error: DAG 'retrying' has no run 'manual__nope'; `zonda dags list-runs retrying`")

    code, out, err = run(capsys, "tasks", "logs", "retrying", "flakey", RUN_ID)
    assert (code, out) == (1, "")
    assert err.strip() == f"error: run '{RUN_ID}' of DAG 'retrying' has no task 'flakey'; did you mean 'flaky'?"

    code, out, err = run(capsys, "tasks", "logs", "retrying", "zzz", RUN_ID)
    assert (code, out) == (1, "")
    assert err.strip() == f"error: run '{RUN_ID}' of DAG 'retrying' has no task 'zzz'; its tasks: flaky"

    code, out, err = run(capsys, "tasks", "logs", "retrying", "flaky", RUN_ID, "--try", "3")
    assert (code, out) == (1, "")
    assert err.strip() == f"error: retrying.flaky has had 2 tries in run '{RUN_ID}'; --try must be 1 to 2"

    for path in attempt_file(home, "retrying", "flaky", 2).parent.iterdir():
        path.unlink()
    code, out, err = run(capsys, "tasks", "logs", "retrying", "flaky", RUN_ID)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: no log for retrying.flaky ({RUN_ID}, try 2): ")
    assert "does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_a_misconfigured_handler_stops_dags_test_before_anything_runs(home: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__LOGGING__TASK_LOG_HANDLER", "no-such-handler")
    code, out, err = run(capsys, "dags", "test", "retrying", "2024-01-02")
    assert code == 1
    assert "DAG run" not in out
    assert "unknown task log handler 'no-such-handler' in [logging] task_log_handler; use one of" in err
    assert "file" in err
    assert not (home / "logs").exists()
    code, _, err = run(capsys, "tasks", "logs", "retrying", "flaky", RUN_ID)
    assert code == 1
    assert "no DAG 'retrying' in the metastore" in err  # nothing was recorded


def test_a_worker_with_a_misconfigured_handler_fails_the_try_and_says_why(home: Path, capsys, monkeypatch) -> None:
    """``tasks run`` goes through the worker's path (as a LocalExecutor or Celery worker does)."""
    from zonda.cli._loading import open_metastore
    from zonda.config import load_settings

    settings = load_settings()
    metastore = open_metastore(settings)
    try:
        h.store_dags(settings, metastore)  # what the DAG processor stores, so `dags trigger` knows the DAG
    finally:
        metastore.dispose()
    assert run(capsys, "dags", "trigger", "retrying", "--run-id", "r1")[0] == 0
    monkeypatch.setenv("ZONDA__LOGGING__TASK_LOG_HANDLER", "nope")
    code, out, _ = run(capsys, "tasks", "run", "retrying", "flaky", "r1")
    assert code == 1
    assert "Task retrying.flaky (r1, try 1): failed" in out
    monkeypatch.delenv("ZONDA__LOGGING__TASK_LOG_HANDLER")
    code, out, err = run(capsys, "tasks", "logs", "retrying", "flaky", "r1")
    assert code == 0
    assert "try 1 of 1: from local file" in err
    assert out.startswith("cannot run retrying.flaky")
    assert "unknown task log handler 'nope' in [logging] task_log_handler" in out
    assert "attempt body" not in out  # the task itself never ran


def test_tasks_logs_help_is_listed_and_cheap(home: Path) -> None:
    """``--help`` builds the parser only: no metastore, no handler, no SQLAlchemy."""
    code = (
        "import sys\n"
        "from zonda.cli import main\n"
        "try:\n"
        "    main(['tasks', 'logs', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'zonda.runner.log_handlers', 'zonda.plugins.manager') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--try TRY_NUMBER" in result.stdout
    assert "--map-index MAP_INDEX" in result.stdout
    assert "HEAVY []" in result.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "zonda", "tasks", "--help"], capture_output=True, text=True, check=True
    )
    assert "logs" in listing.stdout
