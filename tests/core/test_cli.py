"""The ``zonda`` command line, called in-process (``zonda.cli.main``) against a temp ZONDA_HOME and SQLite."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from scheduler_helpers import write_dag as add_dag

from zonda.cli import main

PIPELINE = """
from datetime import datetime, timedelta
from zonda import DAG, Param
from zonda.operators import BashOperator, PythonOperator


def extract(ti, params):
    print("extracting", params["limit"])
    ti.xcom_push(key="rows", value=[1, 2])
    return {"n": params["limit"]}


with DAG(
    "pipeline",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    tags=["etl", "demo"],
    description="The demo pipeline",
    params={"limit": Param(3, type="integer", minimum=1)},
):
    e = PythonOperator(task_id="extract", python_callable=extract)
    load = BashOperator(task_id="load", bash_command="echo loaded {{ ds }}")
    e >> load
"""

FAILING = """
from datetime import timedelta
from zonda import DAG
from zonda.operators import EmptyOperator, PythonOperator


def explode():
    print("about to fail")
    raise ValueError("kaboom")


with DAG("failing", default_args={"retries": 1, "retry_delay": timedelta(0)}):
    first = EmptyOperator(task_id="first")
    bad = PythonOperator(task_id="bad", python_callable=explode)
    after = EmptyOperator(task_id="after")
    first >> bad >> after
"""

BROKEN = """
from zonda import DAG

raise RuntimeError("broken dag file")
"""

RUN_ID = "test__2024-01-02T00:00:00+00:00"


def rows(home: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(home / "zonda.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- basics -------------------------------------------------------------------------------------------------


def test_version(capsys):
    from zonda.version import __version__

    code, out, _ = run(capsys, "version")
    assert code == 0
    assert out.strip() == __version__


def test_version_json(capsys):
    from zonda.version import __version__

    code, out, _ = run(capsys, "version", "--output", "json")
    assert code == 0
    assert json.loads(out)["version"] == __version__


def test_config_get_value_json(zonda_home, capsys, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "7")
    code, out, _ = run(capsys, "config", "get-value", "core", "parallelism", "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["value"] == 7
    assert row["source"] == "env ZONDA__CORE__PARALLELISM"


def test_help_lists_the_groups(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for group in ("version", "db", "dags", "tasks", "config"):
        assert group in out


def test_no_command_prints_help(capsys):
    code, out, _ = run(
        capsys,
    )
    assert code == 0
    assert "usage: zonda" in out


def test_group_without_subcommand_prints_its_help(capsys):
    code, out, _ = run(capsys, "dags")
    assert code == 2
    for sub in ("list", "list-import-errors", "show", "test"):
        assert sub in out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-group"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- dags list / list-import-errors -------------------------------------------------------------------------


def test_dags_list_table_and_json(home, capsys):
    path = add_dag(home, "pipeline.py", PIPELINE)
    code, out, _ = run(capsys, "dags", "list")
    assert code == 0
    header, rule, line, *_ = out.splitlines()
    assert header.split() == ["dag_id", "fileloc", "schedule", "tags", "tasks", "description"]
    assert set(rule) <= {"-", " "}
    assert line.startswith("pipeline ")
    assert str(path) in line
    assert "@daily" in line
    assert "demo, etl" in line

    code, out, _ = run(capsys, "dags", "list", "--output", "json")
    assert code == 0
    data = json.loads(out)
    assert data == [
        {
            "dag_id": "pipeline",
            "fileloc": str(path),
            "schedule": "@daily",
            "tags": ["demo", "etl"],
            "tasks": 2,
            "description": "The demo pipeline",
            "dag_display_name": "pipeline",  # no dag_display_name: the id, as in Airflow
        }
    ]


def test_dags_list_empty(home, capsys):
    code, out, _ = run(capsys, "dags", "list")
    assert code == 0
    assert "(none)" in out
    code, out, _ = run(capsys, "dags", "list", "-o", "json")
    assert json.loads(out) == []


def test_dags_list_with_import_errors_still_lists_and_warns(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    add_dag(home, "broken.py", BROKEN)
    code, out, err = run(capsys, "dags", "list")
    assert code == 0
    assert "pipeline" in out
    assert "1 file(s) failed to import" in err
    code, out, _ = run(capsys, "dags", "list", "-o", "json")
    assert [d["dag_id"] for d in json.loads(out)] == ["pipeline"]


def test_list_import_errors_exit_codes_and_formats(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, _ = run(capsys, "dags", "list-import-errors")
    assert code == 0
    assert "No import errors" in out
    code, out, _ = run(capsys, "dags", "list-import-errors", "-o", "json")
    assert code == 0
    assert json.loads(out) == []

    broken = add_dag(home, "broken.py", BROKEN)
    code, out, _ = run(capsys, "dags", "list-import-errors", "-o", "json")
    assert code == 1
    (error,) = json.loads(out)
    assert error["filename"] == str(broken)
    assert "RuntimeError: broken dag file" in error["error"]
    assert "line 3" in error["error"]

    code, out, _ = run(capsys, "dags", "list-import-errors")
    assert code == 1
    assert str(broken) in out
    assert "RuntimeError: broken dag file" in out


def test_import_errors_are_not_recorded_without_a_metastore(home, capsys):
    add_dag(home, "broken.py", BROKEN)
    code, _, err = run(capsys, "dags", "list-import-errors")
    assert code == 1
    assert "warning" not in err
    assert not (home / "zonda.db").exists()  # listing never creates a metastore


def test_import_errors_written_to_metastore_and_cleared_when_fixed(home, capsys):
    assert run(capsys, "db", "init")[0] == 0
    broken = add_dag(home, "broken.py", BROKEN)
    add_dag(home, "pipeline.py", PIPELINE)

    code, _, err = run(capsys, "dags", "list-import-errors")
    assert code == 1
    assert "warning" not in err
    (row,) = rows(home, "SELECT filename, stacktrace, timestamp FROM import_error")
    assert row["filename"] == str(broken)
    assert "RuntimeError: broken dag file" in row["stacktrace"]
    assert row["timestamp"]

    # Listing again replaces the row instead of adding a second one.
    run(capsys, "dags", "list")
    assert len(rows(home, "SELECT * FROM import_error")) == 1

    add_dag(home, "broken.py", PIPELINE.replace('"pipeline"', '"fixed"'))
    code, _, _ = run(capsys, "dags", "list-import-errors")
    assert code == 0
    assert rows(home, "SELECT * FROM import_error") == []


# --- dags show / tasks list ---------------------------------------------------------------------------------


def test_dags_show_text_and_dot(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, _ = run(capsys, "dags", "show", "pipeline")
    assert code == 0
    assert "DAG pipeline" in out
    assert "schedule=@daily" in out
    assert "extract [PythonOperator, all_success] <- -" in out
    assert "load [BashOperator, all_success] <- extract" in out

    code, out, _ = run(capsys, "dags", "show", "pipeline", "--format", "dot")
    assert code == 0
    assert out.startswith('digraph "pipeline" {')
    assert '"extract" -> "load";' in out
    assert out.rstrip().endswith("}")


def test_dags_show_unknown_dag_is_one_line_error(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, err = run(capsys, "dags", "show", "pipelin")
    assert code == 1
    assert out == ""
    assert err.startswith("error: no DAG 'pipelin' in the DAGs folder")
    assert "did you mean 'pipeline'?" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_tasks_list_json_and_table(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, _ = run(capsys, "tasks", "list", "pipeline", "--output", "json")
    assert code == 0
    data = json.loads(out)
    assert [t["task_id"] for t in data] == ["extract", "load"]
    assert data[0]["operator"] == "PythonOperator"
    assert data[1]["upstream"] == ["extract"]
    assert data[1]["trigger_rule"] == "all_success"
    assert data[0]["retries"] == 0
    assert data[0]["mapped"] is False
    code, out, _ = run(capsys, "tasks", "list", "pipeline")
    assert code == 0
    assert "extract" in out
    assert "BashOperator" in out


# --- tasks test ---------------------------------------------------------------------------------------------


def test_tasks_test_prints_logs_and_xcoms_and_records_nothing(home, capfd):
    add_dag(home, "pipeline.py", PIPELINE)
    assert main(["db", "init"]) == 0
    capfd.readouterr()

    code = main(["tasks", "test", "pipeline", "extract", "2024-01-02"])
    out, _ = capfd.readouterr()
    assert code == 0
    assert "extracting 3" in out  # the task's print, echoed from its log
    assert "Task pipeline.extract: success" in out
    assert "rows = [1, 2]" in out
    assert "return_value = {'n': 3}" in out

    for table in ("dag_run", "task_instance", "xcom"):
        assert rows(home, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0, table
    assert not (home / "logs").exists()


def test_tasks_test_with_conf_and_failure(home, capfd):
    add_dag(home, "pipeline.py", PIPELINE)
    add_dag(home, "failing.py", FAILING)
    assert main(["tasks", "test", "pipeline", "extract", "--conf", '{"limit": 9}']) == 0
    assert "extracting 9" in capfd.readouterr().out

    code = main(["tasks", "test", "failing", "bad"])
    out, _ = capfd.readouterr()
    assert code == 1
    assert "Task failing.bad: failed" in out
    assert "kaboom" in out
    assert not (home / "zonda.db").exists()  # no metastore needed, none created


def test_tasks_test_unknown_task(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, _, err = run(capsys, "tasks", "test", "pipeline", "nope")
    assert code == 1
    assert "has no task 'nope'" in err
    assert "extract" in err


def test_tasks_test_bad_conf_type(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, _, err = run(capsys, "tasks", "test", "pipeline", "extract", "--conf", '{"limit": "x"}')
    assert code == 1
    assert "'limit'" in err
    assert "integer" in err
    assert "Traceback" not in err


# --- dags test ----------------------------------------------------------------------------------------------


def test_dags_test_records_run_task_instances_and_logs(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, _ = run(capsys, "dags", "test", "pipeline", "2024-01-02")
    assert code == 0
    assert f"DAG run {RUN_ID}: success" in out
    assert "task" in out.splitlines()[0]
    assert "Gantt" in out
    assert "█" in out

    (dag_run,) = rows(home, "SELECT * FROM dag_run")
    assert dag_run["dag_id"] == "pipeline"
    assert dag_run["run_id"] == RUN_ID
    assert dag_run["state"] == "success"
    assert dag_run["logical_date"].startswith("2024-01-02")
    assert dag_run["data_interval_end"].startswith("2024-01-02")  # a cron schedule's runs are points in time
    assert dag_run["start_date"] and dag_run["end_date"]

    tis = {r["task_id"]: r for r in rows(home, "SELECT * FROM task_instance")}
    assert set(tis) == {"extract", "load"}
    for ti in tis.values():
        assert ti["state"] == "success"
        assert ti["try_number"] == 1
        assert ti["start_date"] and ti["end_date"]
        assert ti["start_date"] <= ti["end_date"]
        assert ti["duration"] is not None and ti["duration"] >= 0
        assert ti["hostname"] in {socket.gethostname(), socket.getfqdn()}
        assert ti["pid"] == os.getpid()
        assert ti["run_id"] == RUN_ID
    assert tis["extract"]["end_date"] <= tis["load"]["start_date"]

    xcoms = {r["key"]: r["value"] for r in rows(home, "SELECT key, value FROM xcom WHERE task_id = 'extract'")}
    assert json.loads(xcoms["rows"]) == [1, 2]

    base = home / "logs" / "dag_id=pipeline" / f"run_id={RUN_ID}"
    extract_log = (base / "task_id=extract" / "attempt=1.log").read_text()
    assert "extracting 3" in extract_log
    load_log = (base / "task_id=load" / "attempt=1.log").read_text()
    assert "loaded 2024-01-02" in load_log


def test_dags_test_failure_exit_code_retries_and_attempt_logs(home, capsys):
    add_dag(home, "failing.py", FAILING)
    code, out, _ = run(capsys, "dags", "test", "failing", "2024-01-02")
    assert code == 1
    assert f"DAG run {RUN_ID}: failed" in out
    assert "kaboom" in out
    assert "▓" in out  # failed bar in the Gantt chart

    (dag_run,) = rows(home, "SELECT * FROM dag_run")
    assert dag_run["state"] == "failed"
    tis = {r["task_id"]: r for r in rows(home, "SELECT * FROM task_instance")}
    assert tis["first"]["state"] == "success"
    assert tis["bad"]["state"] == "failed"
    assert tis["bad"]["try_number"] == 2  # one retry
    assert tis["after"]["state"] == "upstream_failed"

    folder = home / "logs" / "dag_id=failing" / f"run_id={RUN_ID}" / "task_id=bad"
    assert sorted(p.name for p in folder.iterdir()) == ["attempt=1.log", "attempt=2.log"]
    for attempt in folder.iterdir():
        text = attempt.read_text()
        assert "about to fail" in text
        assert "kaboom" in text


def test_dags_test_quiet(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, _ = run(capsys, "dags", "test", "pipeline", "2024-01-02", "--quiet")
    assert code == 0
    assert out.strip() == f"DAG run {RUN_ID}: success"


def test_dags_test_twice_records_two_runs(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    assert run(capsys, "dags", "test", "pipeline", "2024-01-02", "-q")[0] == 0
    assert run(capsys, "dags", "test", "pipeline", "2024-01-03", "-q")[0] == 0
    assert len(rows(home, "SELECT * FROM dag_run")) == 2
    assert len(rows(home, "SELECT * FROM task_instance")) == 4


def test_dags_test_conf_is_validated_against_params(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, err = run(capsys, "dags", "test", "pipeline", "--conf", '{"limit": "many"}')
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "'pipeline'" in err
    assert "'limit'" in err
    assert "integer" in err

    code, _, err = run(capsys, "dags", "test", "pipeline", "--conf", '{"limit": 0}')
    assert code == 1
    assert ">= 1" in err

    code, out, _ = run(capsys, "dags", "test", "pipeline", "2024-01-02", "--conf", '{"limit": 5}')
    assert code == 0
    (dag_run,) = rows(home, "SELECT conf FROM dag_run")
    assert json.loads(dag_run["conf"]) == {"limit": 5}


@pytest.mark.parametrize(
    ("conf", "needle"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_dags_test_malformed_conf(home, capsys, conf, needle):
    add_dag(home, "pipeline.py", PIPELINE)
    code, _, err = run(capsys, "dags", "test", "pipeline", "--conf", conf)
    assert code == 1
    assert needle in err
    assert "Traceback" not in err


def test_dags_test_bad_logical_date(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, out, err = run(capsys, "dags", "test", "pipeline", "yesterday-ish")
    assert code == 1
    assert out == ""
    assert "'yesterday-ish'" in err
    assert "ISO" in err
    assert "Traceback" not in err
    assert not (home / "zonda.db").exists()  # rejected before anything was recorded


def test_dags_test_unknown_dag(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    code, _, err = run(capsys, "dags", "test", "nope")
    assert code == 1
    assert "no DAG 'nope' in the DAGs folder" in err


# --- config -------------------------------------------------------------------------------------------------


def test_config_get_value_default_env_and_file(home, capsys, monkeypatch):
    assert run(capsys, "config", "get-value", "core", "parallelism") == (0, "32\n", "")
    (home / "zonda.toml").write_text("[core]\nparallelism = 12\n")
    assert run(capsys, "config", "get-value", "core", "parallelism")[1] == "12\n"
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "7")
    assert run(capsys, "config", "get-value", "core", "parallelism")[1] == "7\n"


def test_config_get_value_alias_and_derived(home, capsys):
    assert run(capsys, "config", "get-value", "core", "dag_concurrency")[1] == "16\n"
    code, out, _ = run(capsys, "config", "get-value", "database", "sql_alchemy_conn")
    assert code == 0
    assert out.strip() == f"sqlite:///{home.resolve() / 'zonda.db'}"
    assert run(capsys, "config", "get-value", "core", "executor")[1] == "SequentialExecutor\n"


def test_config_get_value_unknown_key(home, capsys):
    code, out, err = run(capsys, "config", "get-value", "core", "paralelism")
    assert code == 1
    assert out == ""
    assert "unknown configuration key [core] paralelism" in err
    assert "Traceback" not in err


def test_config_broken_toml_is_a_one_line_error(home, capsys):
    (home / "zonda.toml").write_text("[core\n")
    code, _, err = run(capsys, "config", "get-value", "core", "parallelism")
    assert code == 1
    assert str(home / "zonda.toml") in err
    assert "Traceback" not in err


def test_config_list_json_masks_sensitive_values(home, capsys, monkeypatch):
    secret = "c3VwZXItc2VjcmV0LWZlcm5ldC1rZXktdmFsdWU="
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", secret)
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", "postgresql://user:hunter2@db/zonda")
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "7")
    monkeypatch.setenv("ZONDA__CELERY__BROKER_URL", "redis://:brokerpass@broker:6379/0")
    code, out, _ = run(capsys, "config", "list", "--output", "json")
    assert code == 0
    assert secret not in out
    assert "hunter2" not in out
    assert "brokerpass" not in out
    data = {(r["section"], r["key"]): r for r in json.loads(out)}
    assert data[("core", "fernet_key")]["value"] == "***"
    assert data[("database", "sql_alchemy_conn")]["value"] == "postgresql://user:***@db/zonda"
    assert data[("celery", "broker_url")]["value"] == "redis://:***@broker:6379/0"
    assert data[("core", "fernet_key")]["source"] == "env ZONDA__CORE__FERNET_KEY"
    assert data[("core", "parallelism")]["value"] == 7
    assert data[("core", "parallelism")]["source"] == "env ZONDA__CORE__PARALLELISM"
    assert data[("core", "max_active_runs_per_dag")]["source"] == "default"
    assert data[("core", "executor")]["value"] == "LocalExecutor"
    assert set(data[("core", "parallelism")]) == {"section", "key", "value", "source", "description"}


def test_config_list_table_and_section_filter(home, capsys, monkeypatch):
    monkeypatch.setenv("ZONDA__WEBSERVER__SECRET_KEY", "do-not-print-me")
    code, out, _ = run(capsys, "config", "list", "--section", "webserver")
    assert code == 0
    assert "do-not-print-me" not in out
    assert "port" in out
    assert "parallelism" not in out


# --- db -----------------------------------------------------------------------------------------------------


def test_db_check_on_fresh_home_then_init(home, capsys):
    code, out, _ = run(capsys, "db", "check", "-o", "json")
    assert code == 1
    result = json.loads(out)
    assert result["reachable"] is True
    assert result["ok"] is False
    assert result["current_revision"] is None
    assert "zonda db init" in result["error"]

    code, out, _ = run(capsys, "db", "init")
    assert code == 0
    assert "Initialized" in out
    code, out, _ = run(capsys, "db", "check", "-o", "json")
    assert code == 0
    result = json.loads(out)
    assert result["ok"] is True
    assert result["current_revision"] == result["head_revision"]
    code, out, _ = run(capsys, "db", "check")
    assert code == 0
    assert "reachable" in out


# --- entry points -------------------------------------------------------------------------------------------


def test_console_script_and_python_m_entry_points(home):
    add_dag(home, "pipeline.py", PIPELINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(ZONDA_HOME=str(home), ZONDA__CORE__LOAD_EXAMPLES="false")
    script = Path(sys.executable).parent / "zonda"
    assert script.exists(), script
    from zonda.version import __version__

    version = subprocess.run([str(script), "version"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == __version__

    listed = subprocess.run(
        [sys.executable, "-m", "zonda", "dags", "list", "-o", "json"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [d["dag_id"] for d in json.loads(listed.stdout)] == ["pipeline"]

    failed = subprocess.run(
        [sys.executable, "-m", "zonda", "config", "get-value", "core", "nope"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: unknown configuration key")


# --- known core bugs (strict xfail) -------------------------------------------------------------------------


def test_import_error_of_deleted_file_is_cleared(home, capsys):
    assert run(capsys, "db", "init")[0] == 0
    broken = add_dag(home, "broken.py", BROKEN)
    assert run(capsys, "dags", "list-import-errors")[0] == 1
    assert len(rows(home, "SELECT * FROM import_error")) == 1
    broken.unlink()
    assert run(capsys, "dags", "list-import-errors")[0] == 0
    assert rows(home, "SELECT * FROM import_error") == []


def test_db_check_on_fresh_home_leaves_no_half_metastore(home, capsys):
    add_dag(home, "pipeline.py", PIPELINE)
    assert run(capsys, "db", "check")[0] == 1
    code, _, err = run(capsys, "dags", "list")
    assert code == 0
    assert "warning" not in err
