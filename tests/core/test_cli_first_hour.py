"""The first hour with the CLI (issue 11, section 4): ``tasks test`` says when an upstream XCom is missing,
``tasks clear`` of a ``dags test`` run reruns it under the real scheduler, and a mistyped DAG or task id gets
"did you mean" from every command that takes one."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h
from scheduler_helpers import write_dag as add_dag

from zonda.cli import main

XCOMS = """
from datetime import datetime
from zonda import DAG
from zonda.decorators import task
from zonda.operators import BashOperator, PythonOperator


def make():
    return [1, 2, 3]


def nothing():
    print("returning nothing")


def split():
    return {"left": "L", "right": "R"}


def show(values):
    print(f"got {values!r}")


with DAG("xcoms", schedule=None, start_date=datetime(2024, 1, 1)):
    made = PythonOperator(task_id="make", python_callable=make)
    quiet = PythonOperator(task_id="quiet", python_callable=nothing)
    parts = PythonOperator(task_id="split", python_callable=split, multiple_outputs=True)
    PythonOperator(task_id="plain", python_callable=show, op_args=[made.output])
    PythonOperator(task_id="keyed", python_callable=show, op_kwargs={"values": parts.output["left"]})
    BashOperator(task_id="output_env", bash_command='echo "got $V"', env={"V": made.output})
    templ = BashOperator(task_id="templated", bash_command="echo got {{ ti.xcom_pull(task_ids='make') }}")
    made >> templ
    PythonOperator(task_id="from_quiet", python_callable=show, op_args=[quiet.output])
    alone = BashOperator(task_id="alone", bash_command="echo alone")

    @task
    def flow(values):
        print(f"got {values!r}")

    flow(made.output)
"""

MAPPED = """
from datetime import datetime
from zonda import DAG
from zonda.decorators import task


with DAG("mapping", schedule=None, start_date=datetime(2024, 1, 1)):

    @task
    def numbers():
        return [10, 20]

    @task
    def double(n):
        print(f"doubled {n * 2}")

    double.expand(n=numbers())
"""


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def count(home: Path, table: str) -> int:
    with sqlite3.connect(home / "zonda.db") as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err.rsplit("error: ", maxsplit=1)[-1]
    return lines[0]


# --- tasks test: a missing upstream XCom is an error, not None / [] -------------------------------------------


@pytest.mark.parametrize(
    ("dag_file", "dag_id", "task_id", "upstream", "key"),
    [
        ("xcoms.py", "xcoms", "plain", "make", "return_value"),  # an XComArg in op_args
        ("xcoms.py", "xcoms", "output_env", "make", "return_value"),  # `.output` in a templated dict
        ("xcoms.py", "xcoms", "keyed", "split", "left"),  # one key of a multiple_outputs task
        ("xcoms.py", "xcoms", "templated", "make", "return_value"),  # ti.xcom_pull inside a template
        ("xcoms.py", "xcoms", "flow", "make", "return_value"),  # a TaskFlow argument
        ("mapping.py", "mapping", "double", "numbers", "return_value"),  # a mapped task's expand input
    ],
)
def test_tasks_test_names_the_missing_upstream_xcom(home, capfd, dag_file, dag_id, task_id, upstream, key):
    add_dag(home, dag_file, XCOMS if dag_id == "xcoms" else MAPPED)
    code, out, err = run(capfd, "tasks", "test", dag_id, task_id, "2024-01-02")
    assert code == 1
    line = one_line_error(err)
    assert f"task {task_id!r} needs XCom {key!r} of upstream task {upstream!r}, which has not run" in line
    assert "records nothing" in line
    assert f"`zonda dags test {dag_id} 2024-01-02`" in line
    assert f"`zonda tasks test {dag_id} {task_id} 2024-01-02`" in line
    assert "got None" not in out and "got []" not in out and "got \n" not in out  # never ran on an empty value
    assert not (home / "zonda.db").exists()  # still records nothing


def test_tasks_test_of_a_task_without_upstream_xcoms_runs(home, capfd):
    add_dag(home, "xcoms.py", XCOMS)
    code, out, _ = run(capfd, "tasks", "test", "xcoms", "alone")
    assert code == 0 and "Task xcoms.alone: success" in out
    code, out, _ = run(capfd, "tasks", "test", "xcoms", "make")
    assert code == 0 and "return_value = [1, 2, 3]" in out


@pytest.mark.parametrize(
    ("task_id", "extra", "needle"),
    [
        ("plain", (), "got [1, 2, 3]"),
        ("output_env", (), "got [1, 2, 3]"),
        ("keyed", (), "got 'L'"),
        ("templated", (), "got [1, 2, 3]"),
        ("flow", (), "got [1, 2, 3]"),
        ("from_quiet", (), "got None"),  # the upstream ran and pushed nothing: None, as in a real run
    ],
)
def test_tasks_test_reads_upstream_xcoms_of_a_recorded_run(home, capfd, task_id, extra, needle):
    add_dag(home, "xcoms.py", XCOMS)
    code, out, _ = run(capfd, "dags", "test", "xcoms", "2024-01-02", "--quiet")
    assert code == 0, out
    before = {table: count(home, table) for table in ("dag_run", "task_instance", "xcom")}

    for when in ("2024-01-02", "test__2024-01-02T00:00:00+00:00"):  # by logical date and by run id
        code, out, err = run(capfd, "tasks", "test", "xcoms", task_id, when, *extra)
        assert code == 0, out + err
        assert needle in out
        assert "Upstream XComs were read from run test__2024-01-02T00:00:00+00:00" in out
    assert {table: count(home, table) for table in before} == before  # nothing written to the run


def test_tasks_test_mapped_task_expands_from_a_recorded_run(home, capfd):
    add_dag(home, "mapping.py", MAPPED)
    assert run(capfd, "dags", "test", "mapping", "2024-01-02", "--quiet")[0] == 0
    code, out, err = run(capfd, "tasks", "test", "mapping", "double", "2024-01-02", "--map-index", "1")
    assert code == 0, out + err
    assert "doubled 40" in out


def test_tasks_test_upstream_that_did_not_run_in_the_recorded_run(home, capfd):
    add_dag(home, "xcoms.py", XCOMS)
    assert run(capfd, "dags", "test", "xcoms", "2024-01-02", "--quiet")[0] == 0
    with sqlite3.connect(home / "zonda.db") as conn:
        conn.execute("delete from xcom where task_id = 'make'")
        conn.execute("update task_instance set state = 'upstream_failed' where task_id = 'make'")
    code, _, err = run(capfd, "tasks", "test", "xcoms", "plain", "2024-01-02")
    assert code == 1
    line = one_line_error(err)
    assert "which has not run in run 'test__2024-01-02T00:00:00+00:00' (its state: upstream_failed)" in line


def test_tasks_test_unknown_run_id(home, capfd):
    add_dag(home, "xcoms.py", XCOMS)
    code, _, err = run(capfd, "tasks", "test", "xcoms", "alone", "no-such-run")
    assert code == 1
    assert "is neither a date" in one_line_error(err)


# --- tasks clear of a `dags test` run ---------------------------------------------------------------------------

CLEARABLE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import BashOperator

with DAG("clearable", schedule=None, start_date=datetime(2024, 1, 1)):
    BashOperator(task_id="first", bash_command="echo one") >> BashOperator(task_id="second", bash_command="echo two")
"""

TEST_RUN = "test__2024-01-02T00:00:00+00:00"


def _run_row(home: Path) -> tuple[Any, ...]:
    with sqlite3.connect(home / "zonda.db") as conn:
        return conn.execute("select id, run_type, state from dag_run").fetchone()


def test_clear_of_a_dags_test_run_is_rerun_by_the_scheduler(home, capfd, monkeypatch):
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.scheduler import Scheduler

    add_dag(home, "clearable.py", CLEARABLE)
    assert run(capfd, "dags", "test", "clearable", "2024-01-02", "--quiet")[0] == 0
    assert _run_row(home)[1:] == ("test", "success")

    code, out, err = run(capfd, "tasks", "clear", "clearable", "-t", "^second$", "--yes")
    assert code == 0, err
    assert "Cleared 1 task instance(s) in 1 run(s)" in out
    assert f"Run(s) {TEST_RUN} came from `zonda dags test`" in out
    assert "No scheduler is running" in out  # said, not left silently queued
    run_id, run_type, state = _run_row(home)
    assert (run_type, state) == ("manual", "queued")

    settings, metastore = h.configure(home, monkeypatch, None)
    try:
        scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
        assert h.drive(scheduler, [run_id], timeout=60) == {run_id: "success"}
        tries = {r.task_id: (r.state, r.try_number) for r in h.task_instances(metastore.engine, run_id)}
    finally:
        metastore.dispose()
    assert tries == {"first": ("success", 1), "second": ("success", 2)}  # only the cleared task ran again


def test_clear_refuses_a_test_run_that_dags_test_is_still_running(home, capfd):
    add_dag(home, "clearable.py", CLEARABLE)
    assert run(capfd, "dags", "test", "clearable", "2024-01-02", "--quiet")[0] == 0
    with sqlite3.connect(home / "zonda.db") as conn:
        conn.execute("update dag_run set state = 'running'")
    code, _, err = run(capfd, "tasks", "clear", "clearable", "--yes")
    assert code == 1
    line = one_line_error(err)
    assert f"run '{TEST_RUN}' of clearable is being run by `zonda dags test`" in line
    assert "nothing was cleared" in line and "zonda dags test clearable" in line
    assert _run_row(home)[1:] == ("test", "running")
    with sqlite3.connect(home / "zonda.db") as conn:
        assert conn.execute("select count(*) from task_instance where state is null").fetchone() == (0,)


# --- "did you mean" for every id a user types -------------------------------------------------------------------

USER_PROCESSING = """
from datetime import datetime
from zonda import DAG
from zonda.operators import BashOperator

with DAG("user_processing", schedule="@daily", start_date=datetime(2024, 1, 1)):
    BashOperator(task_id="extract_user", bash_command="echo x") >> BashOperator(task_id="store_user", bash_command="echo y")
"""

RUN = "test__2024-01-02T00:00:00+00:00"


@pytest.fixture
def stored(home: Path, capfd: pytest.CaptureFixture[str]) -> Path:
    """user_processing in the DAGs folder and in the metastore, with one run."""
    add_dag(home, "user_processing.py", USER_PROCESSING)
    assert run(capfd, "dags", "test", "user_processing", "2024-01-02", "--quiet")[0] == 0
    return home


DAG_TYPO = "user_procesing"


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["dags", "show", DAG_TYPO], "in the DAGs folder"),
        (["dags", "test", DAG_TYPO], "in the DAGs folder"),
        (["dags", "backfill", DAG_TYPO, "-s", "2024-01-01", "-e", "2024-01-02", "--local"], "in the DAGs folder"),
        (["tasks", "list", DAG_TYPO], "in the DAGs folder"),
        (["tasks", "test", DAG_TYPO, "extract_user"], "in the DAGs folder"),
        (["dags", "trigger", DAG_TYPO], "in the metastore"),
        (["dags", "list-runs", DAG_TYPO], "in the metastore"),
        (["dags", "pause", DAG_TYPO], "in the metastore"),
        (["dags", "unpause", DAG_TYPO], "in the metastore"),
        (["dags", "backfill", DAG_TYPO, "-s", "2024-01-01", "-e", "2024-01-02", "--no-wait"], "in the metastore"),
        (["tasks", "run", DAG_TYPO, "extract_user", RUN], "in the metastore"),
        (["tasks", "clear", DAG_TYPO, "--yes"], "in the metastore"),
        (["tasks", "logs", DAG_TYPO, "extract_user", RUN], "in the metastore"),
        (["tasks", "states-for-dag-run", DAG_TYPO, RUN], "in the metastore"),
    ],
)
def test_unknown_dag_id_gets_did_you_mean(stored, capfd, argv, where):
    code, _, err = run(capfd, *argv)
    assert code == 1
    line = one_line_error(err)
    assert line.startswith(f"error: no DAG {DAG_TYPO!r} {where}")
    assert "did you mean 'user_processing'?" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["tasks", "test", "user_processing", "extract_usr"],
        ["tasks", "run", "user_processing", "extract_usr", RUN],
        ["tasks", "logs", "user_processing", "extract_usr", RUN],
        ["tasks", "clear", "user_processing", "-t", "^extract_usr$", "--yes"],
        ["tasks", "clear", "user_processing", "-t", "extract_usr", "--yes"],
    ],
)
def test_unknown_task_id_gets_did_you_mean(stored, capfd, argv):
    code, _, err = run(capfd, *argv)
    assert code == 1
    assert "did you mean 'extract_user'?" in one_line_error(err)


def test_unknown_run_id_gets_did_you_mean(stored, capfd):
    code, _, err = run(capfd, "tasks", "states-for-dag-run", "user_processing", RUN.replace("test", "tset"))
    assert code == 1
    assert f"did you mean {RUN!r}?" in one_line_error(err)


def test_nothing_close_lists_or_points_to_the_listing(stored, capfd):
    code, _, err = run(capfd, "dags", "show", "zzzz")
    assert code == 1 and "did you mean" not in err and "`zonda dags list` lists them" in one_line_error(err)
    code, _, err = run(capfd, "tasks", "test", "user_processing", "zzzz")
    assert code == 1 and "its tasks: extract_user, store_user" in one_line_error(err)
    code, _, err = run(capfd, "dags", "trigger", "zzzz")
    assert code == 1 and "did you mean" not in err and "DAG processor" in one_line_error(err)


def test_suggestions_helper():
    from zonda.suggestions import close_matches, did_you_mean, unknown_name

    assert did_you_mean("user_procesing", ["user_processing", "user_reporting", "other"]) == (
        "did you mean 'user_processing' or 'user_reporting'?"
    )
    assert close_matches("Extract", ["extract", "load"]) == ["extract"]  # case first
    assert did_you_mean("zzz", ["alpha"]) == ""
    assert did_you_mean("load", ["load", "loads"]) == "did you mean 'loads'?"  # never the name itself
    assert unknown_name("no DAG 'x'", "x", [], "see the list") == "no DAG 'x'; see the list"


def test_recorded_run_lookup_and_clear_hand_over_on_every_backend(home, capfd, monkeypatch, metastore_url):
    """The logical-date match and the run_type update work on SQLite, PostgreSQL and MariaDB alike."""
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", metastore_url)
    add_dag(home, "xcoms.py", XCOMS)
    assert run(capfd, "db", "init")[0] == 0
    code, out, err = run(capfd, "dags", "test", "xcoms", "2024-01-02T06:30:00+02:00", "--quiet")
    assert code == 0, out + err
    code, out, err = run(capfd, "tasks", "test", "xcoms", "plain", "2024-01-02T04:30:00+00:00")
    assert code == 0, out + err
    assert "got [1, 2, 3]" in out
    code, out, _ = run(capfd, "tasks", "clear", "xcoms", "-t", "^plain$", "--yes")
    assert code == 0 and "came from `zonda dags test`" in out

    from sqlalchemy import text

    from zonda.metastore.db import Metastore

    metastore = Metastore(metastore_url)
    try:
        with metastore.engine.connect() as conn:
            assert conn.execute(text("select run_type, state from dag_run")).all() == [("manual", "queued")]
    finally:
        metastore.dispose()
