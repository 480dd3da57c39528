"""User callbacks the scheduler cannot run itself, run by the DAG processor from ``callback_request`` rows.

A DAG's ``on_success_callback`` / ``on_failure_callback`` when the scheduler ends a run, and a task's
``on_retry_callback`` / ``on_failure_callback`` when the scheduler ends a try because the task process died
(here: the task SIGKILLs itself, a real kill -9 of a real task process under the LocalExecutor). Each callback
appends a JSON line to a file, which is what the tests read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

CALLBACKS = """
import json
import os
import signal
from datetime import datetime, timedelta

from zonda import DAG
from zonda.operators import PythonOperator

OUT = {out!r}


def note(kind, context):
    ti = context.get("ti")
    line = {{
        "kind": kind,
        "run_id": context["dag_run"].run_id,
        "reason": context.get("reason"),
        "task_id": ti.task_id if ti is not None else None,
        "try_number": ti.try_number if ti is not None else None,
        "exception": str(context.get("exception")) if context.get("exception") else None,
        "pid": os.getpid(),
    }}
    with open(OUT, "a") as handle:
        handle.write(json.dumps(line) + "\\n")


def die(**context):
    os.kill(os.getpid(), signal.SIGKILL)  # the task process dies without recording anything


def ok(**context):
    return None


with DAG(
    "cb_fail",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    on_failure_callback=lambda context: note("dag_failure", context),
    on_success_callback=lambda context: note("dag_success", context),
):
    PythonOperator(
        task_id="dies",
        python_callable=die,
        retries=1,
        retry_delay=timedelta(0),
        on_retry_callback=lambda context: note("task_retry", context),
        on_failure_callback=lambda context: note("task_failure", context),
    )

with DAG("cb_ok", schedule=None, start_date=datetime(2024, 1, 1), on_success_callback=lambda c: note("ok", c)):
    PythonOperator(task_id="fine", python_callable=ok)

with DAG("cb_none", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="fine", python_callable=ok)
"""


def _run(home: Path, settings: Any, metastore: Any, dag_id: str) -> tuple[int, str]:
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    run = int(trigger_dag(metastore.engine, dag_id)["id"])
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=2, settings=settings), metastore=metastore)
    states = h.drive(scheduler, [run], timeout=60)
    return run, states[run]


def _pending(metastore: Any) -> int:
    from zonda.metastore import tables as t

    with metastore.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.callback_request)).scalar_one()


def _notes(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_callbacks_of_a_dead_task_process_and_of_the_failed_run_run_in_the_dag_processor(scheduler_setup: Any) -> None:
    from zonda.dag_processing import DagProcessor

    home, settings, metastore = scheduler_setup
    out = home / "callbacks.jsonl"
    h.write_dag(home, "callbacks.py", CALLBACKS.format(out=str(out)))
    h.store_dags(settings, metastore)
    _, state = _run(home, settings, metastore, "cb_fail")
    assert state == "failed"
    # Both tries were ended by the scheduler (exit -9), and the run failed: three requests, nothing run yet.
    assert _pending(metastore) == 3
    assert _notes(out) == []
    with DagProcessor(settings, metastore) as processor:
        assert processor.run_callbacks(timeout=60) == 3
    assert _pending(metastore) == 0
    notes = _notes(out)
    assert [n["kind"] for n in notes] == ["task_retry", "task_failure", "dag_failure"]
    retry, failure, dag_failure = notes
    assert (retry["task_id"], retry["try_number"]) == ("dies", 1)
    assert (failure["task_id"], failure["try_number"]) == ("dies", 2)
    for note in (retry, failure):
        assert "exited with -9 without recording an end state" in note["exception"]
    assert dag_failure["reason"] == "task_failure"
    assert dag_failure["run_id"] == retry["run_id"]
    # The task callbacks wrote into the try's own log, after the reason the scheduler gave.
    log_text = next((settings.log_folder / "dag_id=cb_fail").rglob("attempt=2.log")).read_text()
    assert "The scheduler ended this try: the task process exited with -9" in log_text
    assert "Running on_failure_callback (from the DAG processor" in log_text


def test_a_successful_run_asks_for_its_callback_and_a_dag_without_callbacks_asks_for_nothing(
    scheduler_setup: Any,
) -> None:
    from zonda.dag_processing import DagProcessor

    home, settings, metastore = scheduler_setup
    out = home / "callbacks.jsonl"
    h.write_dag(home, "callbacks.py", CALLBACKS.format(out=str(out)))
    h.store_dags(settings, metastore)
    assert _run(home, settings, metastore, "cb_none")[1] == "success"
    assert _pending(metastore) == 0
    assert _run(home, settings, metastore, "cb_ok")[1] == "success"
    assert _pending(metastore) == 1
    with DagProcessor(settings, metastore) as processor:
        assert processor.run_callbacks(timeout=60) == 1
    assert [(n["kind"], n["reason"]) for n in _notes(out)] == [("ok", "success")]


def test_a_callback_that_cannot_load_or_hangs_is_logged_and_dropped(
    scheduler_setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from zonda.dag_processing.callbacks import CallbackRunner

    home, settings, metastore = scheduler_setup
    out = home / "callbacks.jsonl"
    dag_file = h.write_dag(home, "callbacks.py", CALLBACKS.format(out=str(out)))
    h.store_dags(settings, metastore)
    assert _run(home, settings, metastore, "cb_ok")[1] == "success"
    dag_file.write_text("raise RuntimeError('broken on purpose')\n")  # the file broke after the run ended
    runner = CallbackRunner(settings, metastore)
    with caplog.at_level("ERROR", logger="zonda.dag_processing.callbacks"):
        runner.drain(timeout=60)
    assert runner.completed == 1 and _pending(metastore) == 0
    assert "ended with exit code 1" in caplog.text

    dag_file.write_text(CALLBACKS.format(out=str(out)).replace('note("ok", c)', "__import__('time').sleep(600)"))
    assert _run(home, settings, metastore, "cb_ok")[1] == "success"
    hasty = CallbackRunner(settings, metastore, timeout=0.5)
    hasty.timeout = 1.5  # the file's import plus half a second: the sleeping callback is stopped
    caplog.clear()
    with caplog.at_level("ERROR", logger="zonda.dag_processing.callbacks"):
        hasty.drain(timeout=30)
    assert hasty.completed == 1 and _pending(metastore) == 0
    assert "took longer than 2 s; stopped" in caplog.text
    assert _notes(out) == []


DIES_PLAIN = """
import os
import signal
from datetime import datetime

from zonda import DAG
from zonda.operators import PythonOperator


def die(**context):
    os.kill(os.getpid(), signal.SIGKILL)


with DAG("dies_plain", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="dies", python_callable=die)
"""


def test_failure_listeners_hear_of_a_try_the_scheduler_ended(scheduler_setup: Any) -> None:
    """A plugin's on_task_instance_failed is called for a try whose process died, even when the task has no
    callback of its own: from the DAG processor, with the real task instance."""
    from zonda import hookimpl
    from zonda.dag_processing import DagProcessor
    from zonda.executors.local import LocalExecutor
    from zonda.plugins.manager import PluginManager
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    home, settings, metastore = scheduler_setup
    out = home / "heard.jsonl"

    class Listener:
        @hookimpl
        def on_task_instance_failed(self, previous_state, task_instance, error, will_retry):
            line = {
                "task_id": task_instance.task_id,
                "try_number": task_instance.try_number,
                "state": task_instance.state.value,
                "error": str(error),
                "will_retry": will_retry,
                "previous_state": previous_state,
            }
            with open(out, "a") as handle:
                handle.write(json.dumps(line) + "\n")

    plugins = PluginManager(plugins_folder=None, autoload=False)
    plugins.register(Listener(), "failure_listener")
    h.write_dag(home, "dies.py", DIES_PLAIN)
    h.store_dags(settings, metastore)
    run = int(trigger_dag(metastore.engine, "dies_plain")["id"])
    scheduler = Scheduler(
        settings, executor=LocalExecutor(parallelism=1, settings=settings), metastore=metastore, plugins=plugins
    )
    assert h.drive(scheduler, [run], timeout=60) == {run: "failed"}
    assert _pending(metastore) == 1
    with DagProcessor(settings, metastore, plugins=plugins) as processor:
        assert processor.run_callbacks(timeout=60) == 1
    (heard,) = _notes(out)
    assert heard["task_id"] == "dies" and heard["try_number"] == 1 and heard["state"] == "failed"
    assert heard["will_retry"] is False and heard["previous_state"] == "running"
    assert "exited with -9 without recording an end state" in heard["error"]


def test_a_callback_for_a_task_removed_from_the_dag_is_dropped_with_a_warning(
    scheduler_setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from zonda.dag_processing.callbacks import TASK_FAILURE, CallbackRunner, request_callback

    home, settings, metastore = scheduler_setup
    h.write_dag(home, "callbacks.py", CALLBACKS.format(out=str(home / "callbacks.jsonl")))
    h.store_dags(settings, metastore)
    run, _ = _run(home, settings, metastore, "cb_ok")
    with metastore.engine.begin() as conn:  # as if the task had been renamed since the scheduler asked
        request_callback(
            conn,
            kind=TASK_FAILURE,
            dag_id="cb_ok",
            fileloc=str(home / "dags" / "callbacks.py"),
            dag_run_id=run,
            task_id="renamed_since",
            try_number=1,
            message="no heartbeat",
        )
    runner = CallbackRunner(settings, metastore)
    with caplog.at_level("ERROR", logger="zonda.dag_processing.callbacks"):
        runner.drain(timeout=60)
    assert runner.completed == 2 and _pending(metastore) == 0  # the run's own success callback, then this one
    assert "exit code" not in caplog.text  # the child ended cleanly: nothing to run, no traceback


CONTEXT_DAGS = """
import json
from datetime import datetime

from zonda import DAG
from zonda.operators import EmptyOperator, PythonOperator

OUT = {out!r}


def note(kind, context):
    ti = context["ti"]
    line = {{
        "kind": kind,
        "ti": [ti.task_id, ti.map_index, ti.state.value, ti.try_number],
        "same_ti": context["task_instance"] is ti,
        "task": context["task"].task_id,
        "dag": context["dag"].dag_id,
        "dag_run": [context["dag_run"].run_id, context["dag_run"].state],
        "run_id": context["run_id"],
        "reason": context["reason"],
        "ds": context["ds"],
        "logical_date": context["logical_date"].isoformat(),
        "params": dict(context["params"]),
        "has_conf": context["conf"] is not None,
        "macros_ds_add": context["macros"].ds_add(context["ds"], 1),
    }}
    with open(OUT, "a") as handle:
        handle.write(json.dumps(line) + "\\n")


def boom():
    raise ValueError("boom")


with DAG(
    "ctx_fail",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={{"who": "world"}},
    on_failure_callback=lambda context: note("dag_failure", context),
):
    first = EmptyOperator(task_id="first")
    bad = PythonOperator(task_id="boom", python_callable=boom)
    after = EmptyOperator(task_id="after")
    first >> bad >> after
    first >> EmptyOperator(task_id="side")

with DAG(
    "ctx_ok",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={{"who": "world"}},
    on_success_callback=lambda context: note("dag_success", context),
):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""


def _check_context_notes(notes: list[dict[str, Any]], conf_who: str) -> None:
    failure, success = sorted(notes, key=lambda n: n["kind"])
    # Failure: the task instance that failed (not the upstream_failed one that ended after it), as in Airflow.
    assert failure["ti"] == ["boom", -1, "failed", 1]
    assert failure["task"] == "boom"
    assert failure["reason"] == "task_failure"
    assert failure["dag"] == "ctx_fail"
    assert failure["dag_run"] == [failure["run_id"], "failed"]
    # Success: the task instance that ended last.
    assert success["ti"] == ["b", -1, "success", 1]
    assert success["reason"] == "success"
    assert success["dag_run"] == [success["run_id"], "success"]
    for note in (failure, success):
        assert note["same_ti"] is True
        assert note["ds"] == "2024-03-04"
        assert note["logical_date"] == "2024-03-04T00:00:00+00:00"
        assert note["params"] == {"who": conf_who}
        assert note["has_conf"] is True
        assert note["macros_ds_add"] == "2024-03-05"


def test_a_dag_callback_context_has_airflows_keys_in_dags_test(
    scheduler_setup: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from zonda.cli import main

    home, _, _ = scheduler_setup
    out = home / "context.jsonl"
    h.write_dag(home, "context.py", CONTEXT_DAGS.format(out=str(out)))
    conf = json.dumps({"who": "tester"})
    assert main(["dags", "test", "ctx_fail", "2024-03-04", "--conf", conf, "-q"]) == 1
    assert main(["dags", "test", "ctx_ok", "2024-03-04", "--conf", conf, "-q"]) == 0
    capsys.readouterr()
    _check_context_notes(_notes(out), "tester")


def test_a_dag_callback_context_has_airflows_keys_when_scheduled(scheduler_setup: Any) -> None:
    from datetime import UTC, datetime

    from zonda.dag_processing import DagProcessor
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    home, settings, metastore = scheduler_setup
    out = home / "context.jsonl"
    h.write_dag(home, "context.py", CONTEXT_DAGS.format(out=str(out)))
    h.store_dags(settings, metastore)
    when = datetime(2024, 3, 4, tzinfo=UTC)
    runs = [
        int(trigger_dag(metastore.engine, dag_id, conf={"who": "scheduler"}, logical_date=when)["id"])
        for dag_id in ("ctx_fail", "ctx_ok")
    ]
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=2, settings=settings), metastore=metastore)
    assert sorted(h.drive(scheduler, runs, timeout=60).values()) == ["failed", "success"]
    with DagProcessor(settings, metastore) as processor:
        assert processor.run_callbacks(timeout=60) == 2
    _check_context_notes(_notes(out), "scheduler")
