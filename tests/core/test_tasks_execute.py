"""``zonda tasks execute``: one try of one task instance from a versioned JSON workload, through the real command
in subprocesses, on SQLite and PostgreSQL.

The workloads are made the way an executor that runs tasks elsewhere makes them: the real scheduler queues the
instances into an executor that only keeps what it is given (as a Celery executor hands them to its broker),
and :func:`encode_workload` turns each into the public JSON. A ledger line per task body run is the proof of
what ran (see ``tests/integration/scheduler_helpers.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.executors.base import Workload
from zonda.executors.workload_schema import (
    EXIT_INVALID_WORKLOAD,
    EXIT_NOT_CLAIMED,
    MAX_WORKLOAD_BYTES,
    InvalidWorkload,
    encode_workload,
    json_schema,
    parse_workload,
)

DAG = """
import time
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context, "start")
    time.sleep(0.5)  # long enough for a second delivery to arrive while this one runs
    record(context, "end")


def boom(**context):
    record(context, "end")
    raise RuntimeError("boom")


with DAG("exec_dag", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="work", python_callable=work)
    PythonOperator(task_id="boom", python_callable=boom, retries=1, retry_delay=0)
"""


class Env(h.LedgerSetup):
    """The shared set-up, with ``exec_dag`` stored, and ``zonda tasks execute`` run as a process."""

    def queue_run(self) -> dict[str, Workload]:
        """Trigger a run and let the real scheduler queue its instances; the workloads by task id."""
        from zonda.scheduler.runs import trigger_dag
        from zonda.scheduler.scheduler import Scheduler

        trigger_dag(self.engine, "exec_dag")
        executor = h.KeepingExecutor(settings=self.settings)
        scheduler = Scheduler(self.settings, executor=executor, metastore=self.metastore)
        scheduler.start()
        try:
            h.wait_for(lambda: (scheduler.run_once(), len(executor.sent) >= 2)[1], 20, what="instances queued")
        finally:
            scheduler.shutdown()
        return {w.task_id: w for w in executor.sent}

    def workload_json(self, workload: Workload) -> str:
        return encode_workload(workload, self.settings).to_json()

    def execute(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "zonda", "tasks", "execute", *args],
            input=stdin,
            env=self.process_env(),
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )

    def start(self, workload_file: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "zonda", "tasks", "execute", "--workload", f"@{workload_file}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.process_env(),
            text=True,
        )

    def process_env(self) -> dict[str, str]:
        env = h.subprocess_env(self.home, self.url)
        env.pop("ZONDA__CORE__EXECUTOR")
        return env

    def row(self, task_id: str) -> Any:
        return next(r for r in h.task_instances(self.engine, dag_id="exec_dag") if r.task_id == task_id)

    def ended(self, task_id: str) -> list[h.Entry]:
        return [e for e in h.read_ledger(self.ledger) if e.task_id == task_id and e.event == "end"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Env(zonda_home, url, monkeypatch) as setup:
        setup.dag("exec_dag.py", DAG)
        setup.store()
        yield setup


def _one_line(text: str) -> str:
    """The command's one error line (log lines of the task process may precede it)."""
    lines = [line for line in text.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, text
    return lines[0]


# --- running ----------------------------------------------------------------------------------------------------


def test_a_workload_file_runs_its_try_and_records_the_end(env: Env, tmp_path: Path) -> None:
    workloads = env.queue_run()
    document = json.loads(env.workload_json(workloads["work"]))
    assert document["dag_file"] == "exec_dag.py" and document["version"] == 1 and document["try_number"] == 1
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(document))
    result = env.execute("--workload", f"@{path}")
    assert result.returncode == 0, result.stderr
    assert "Task exec_dag.work" in result.stdout and "success" in result.stdout
    row = env.row("work")
    assert (row.state, row.try_number) == ("success", 1)
    assert len(env.ended("work")) == 1


def test_a_failing_try_exits_1_and_its_retry_runs_from_the_next_workload(env: Env) -> None:
    workloads = env.queue_run()
    first = env.workload_json(workloads["boom"])
    result = env.execute("--workload", "-", stdin=first)  # from standard input
    assert result.returncode == 1, result.stderr
    assert env.row("boom").state == "up_for_retry"
    # Delivered again after it ran: the try is not run a second time.
    again = env.execute("--workload", first)  # inline JSON
    assert again.returncode == EXIT_NOT_CLAIMED
    assert "already claimed" in _one_line(again.stderr)
    assert len(env.ended("boom")) == 1


def test_the_same_workload_delivered_twice_at_once_runs_once(env: Env, tmp_path: Path) -> None:
    workloads = env.queue_run()
    path = tmp_path / "workload.json"
    path.write_text(env.workload_json(workloads["work"]))
    procs = [env.start(path), env.start(path)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, EXIT_NOT_CLAIMED], results
    loser = next(err for code, _, err in results if code == EXIT_NOT_CLAIMED)
    assert "already claimed" in _one_line(loser)
    entries = [e for e in h.read_ledger(env.ledger) if e.task_id == "work"]
    assert [e.event for e in entries] == ["start", "end"]  # the task body ran exactly once
    row = env.row("work")
    assert (row.state, row.try_number) == ("success", 1)


def test_a_workload_for_another_try_or_an_unqueued_instance_runs_nothing(env: Env) -> None:
    workloads = env.queue_run()
    work = workloads["work"]
    from dataclasses import replace

    stale = env.execute("--workload", env.workload_json(replace(work, try_number=2)))
    assert stale.returncode == EXIT_NOT_CLAIMED
    assert "not try 2" in _one_line(stale.stderr)
    missing = env.execute("--workload", env.workload_json(replace(work, run_id="no_such_run")))
    assert missing.returncode == EXIT_NOT_CLAIMED
    assert "does not exist" in _one_line(missing.stderr)
    assert env.row("work").state == "queued"  # untouched
    with env.engine.begin() as conn:  # cleared by someone meanwhile: no longer queued
        from sqlalchemy import update

        from zonda.metastore import tables as t

        conn.execute(update(t.task_instance).where(t.task_instance.c.task_id == "work").values(state="scheduled"))
    unqueued = env.execute("--workload", env.workload_json(work))
    assert unqueued.returncode == EXIT_NOT_CLAIMED
    assert "not queued" in _one_line(unqueued.stderr)
    assert env.ended("work") == []


def test_the_claim_is_a_compare_and_set_on_the_try_number(env: Env) -> None:
    """The row-level guard itself: a claim naming another try number changes nothing, even while queued."""
    from zonda.metastore.db import Metastore
    from zonda.runner.store import DagRunInfo, MetastoreRunStore

    work = env.queue_run()["work"]
    store = MetastoreRunStore(Metastore(env.url))
    try:
        run = DagRunInfo(work.dag_id, work.run_id, None, None, None, id=work.dag_run_id)
        values = {"state": "running", "try_number": 1, "pid": 1}
        assert not store.claim_task_instance(run, "work", -1, values, try_number=1)
        assert env.row("work").state == "queued"
        assert store.claim_task_instance(run, "work", -1, values, try_number=0)
        assert not store.claim_task_instance(run, "work", -1, values, try_number=0)  # not queued any more
    finally:
        store.close()
        store.metastore.dispose()


def test_a_dag_file_missing_on_this_machine_fails_the_try_saying_so(env: Env) -> None:
    work = env.queue_run()["work"]
    document = json.loads(env.workload_json(work))
    (env.home / "dags" / "exec_dag.py").rename(env.home / "elsewhere.py")
    result = env.execute("--workload", json.dumps(document))
    assert result.returncode == 1
    assert "cannot read the DAG file" in _one_line(result.stderr)
    row = env.row("work")
    assert (row.state, row.try_number) == ("failed", 1)


# --- refusing bad workloads ---------------------------------------------------------------------------------------


def test_invalid_workloads_exit_2_with_one_line_and_write_nothing(env: Env, tmp_path: Path) -> None:
    work = env.queue_run()["work"]
    good = json.loads(env.workload_json(work))
    cases = {
        "unknown field": ({**good, "dag_idd": "x"}, "'dag_idd'"),
        "wrong type": ({**good, "try_number": "1"}, "'try_number' must be an integer"),
        "wrong version": ({**good, "version": 2}, "'version'"),
        "escape": ({**good, "dag_file": "../elsewhere.py"}, "'..'"),
    }
    for what, (document, expected) in cases.items():
        result = env.execute("--workload", json.dumps(document))
        assert result.returncode == EXIT_INVALID_WORKLOAD, (what, result.stderr)
        line = _one_line(result.stderr)
        assert expected in line and "Traceback" not in result.stderr, (what, line)
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_WORKLOAD_BYTES + 1) + "{}")
    result = env.execute("--workload", f"@{big}")
    assert result.returncode == EXIT_INVALID_WORKLOAD and "larger than" in _one_line(result.stderr)
    result = env.execute("--workload", f"@{tmp_path / 'absent.json'}")
    assert result.returncode == EXIT_INVALID_WORKLOAD and "cannot read the workload file" in _one_line(result.stderr)
    row = env.row("work")
    assert (row.state, row.try_number) == ("queued", 0)
    assert not (env.home / "logs").exists() or not list((env.home / "logs").rglob("*.log"))


def test_a_worker_pointed_at_an_uninitialized_metastore_says_so(zonda_home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")}
    env.update(ZONDA_HOME=str(zonda_home), ZONDA__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'empty.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "zonda", "tasks", "execute", "--workload", json.dumps(_good())],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    assert "not initialized; run `zonda db init`" in _one_line(result.stderr)


def _good() -> dict[str, Any]:
    return {
        "version": 1,
        "kind": "execute_task",
        "dag_id": "d",
        "task_id": "t",
        "run_id": "manual__1",
        "try_number": 1,
        "dag_file": "team/etl.py",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "workload field 'version': 2 is not a version this Zonda reads"),
        ({"version": "1"}, "workload field 'version'"),
        ({"version": True}, "workload field 'version'"),
        ({"kind": "run_dag"}, 'workload field \'kind\': "run_dag" is not allowed; use "execute_task"'),
        ({"try_numbr": 1}, "did you mean 'try_number'?"),
        ({"pickle": "gASV"}, "workload field 'pickle' is not a field of version 1"),
        ({"try_number": 0}, "'try_number' must be at least 1"),
        ({"try_number": True}, "'try_number' must be an integer, not a boolean"),
        ({"try_number": 1.5}, "'try_number' must be an integer, not a number 1.5"),
        ({"try_number": 2**31}, "'try_number' must be at most"),
        ({"map_index": -2}, "'map_index' must be at least -1"),
        ({"dag_id": ""}, "'dag_id' must not be empty"),
        ({"dag_id": 3}, "'dag_id' must be a string, not a number 3"),
        ({"dag_id": None}, "'dag_id' must be a string, not null"),
        ({"task_id": "x" * 251}, "'task_id' is longer than 250 characters"),
        ({"run_id": "a\nb"}, "'run_id' contains a control character"),
        ({"dag_file": "/etc/passwd.py"}, "is absolute"),
        ({"dag_file": "a/../../b.py"}, "contains '..'"),
        ({"dag_file": "a\\b.py"}, "backslash"),
        ({"dag_file": "dag.txt"}, "is not a .py file"),
        ({"bundle": "anywhere"}, "'bundle'"),
    ],
)
def test_each_field_is_checked_with_a_named_one_line_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidWorkload) as info:
        parse_workload(json.dumps({**_good(), **change}))
    text = str(info.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "must be a JSON object, not an array"),
        ("{", "not valid JSON"),
        ('{"version": 1, "version": 1}', "'version' appears twice"),
        ('{"version": NaN}', "NaN, which is not JSON"),
        ("{}", "'version' is missing"),
        ('{"version": 1, "kind": "execute_task"}', "'dag_id' is missing"),
    ],
)
def test_documents_that_are_not_workloads(text: str, message: str) -> None:
    with pytest.raises(InvalidWorkload, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_workload(text)


def test_defaults_and_round_trip() -> None:
    parsed = parse_workload(json.dumps(_good()))
    assert (parsed.map_index, parsed.bundle, parsed.queue, parsed.pool) == (
        -1,
        "dags_folder",
        "default",
        "default_pool",
    )
    assert parse_workload(parsed.to_json()) == parsed
    assert parse_workload(json.dumps({**_good(), "try_number": 2.0})).try_number == 2  # JSON's integer 2


def test_a_symlink_out_of_the_dags_folder_is_refused(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.config import load_settings

    _, metastore = h.configure(zonda_home, monkeypatch, None)
    metastore.dispose()
    outside = zonda_home / "outside.py"
    outside.write_text("x = 1\n")
    (zonda_home / "dags" / "link.py").symlink_to(outside)
    document = parse_workload(json.dumps({**_good(), "dag_file": "link.py"}))
    with pytest.raises(InvalidWorkload, match="leads outside the dags_folder bundle"):
        document.to_workload(load_settings(zonda_home))


def test_encoding_refuses_a_dag_file_outside_every_bundle(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    metastore.dispose()
    workload = Workload(1, "d", "r", "t", -1, 1, str(zonda_home / "elsewhere.py"))
    with pytest.raises(InvalidWorkload, match="neither in the DAGs folder"):
        encode_workload(workload, settings)
    example = Path(__import__("zonda.example_dags", fromlist=["x"]).__file__).parent / "tutorial.py"
    if example.exists():  # the examples bundle round-trips (relative to the example folder)
        document = encode_workload(Workload(1, "d", "r", "t", -1, 1, str(example)), settings)
        assert (document.bundle, document.dag_file) == ("example_dags", "tutorial.py")
        assert document.dag_path(settings) == example.resolve()


# --- the exported JSON Schema -------------------------------------------------------------------------------------


def _schema_corpus() -> list[Any]:
    good = _good()
    documents: list[Any] = [good, {**good, "map_index": 3, "bundle": "example_dags", "queue": "q", "pool": "p"}]
    for field, values in {
        "version": [2, "1", True, None, 1.0],
        "kind": ["x", 1],
        "dag_id": ["", 3, None, "x" * 250, "x" * 251, "a\tb", "ünïcode"],
        "try_number": [0, 1, -1, True, 1.5, 2.0, 2**31 - 1, 2**31, "1"],
        "map_index": [-1, -2, 0, False],
        "dag_file": ["/abs.py", "../x.py", "a/../b.py", "a/..b.py", "a\\b.py", "x.txt", "", "ok/x.py", "a..py"],
        "bundle": ["dags_folder", "example_dags", "other"],
        "priority_weight": [-5, 10, 2**31],
        "unknown": [1],
    }.items():
        documents.extend({**good, field: value} for value in values)
    for field in good:
        documents.append({k: v for k, v in good.items() if k != field})
    documents.extend([[], "text", 3, None])
    return documents


def test_print_schema_is_the_validator_s_schema_and_agrees_with_it() -> None:
    """The exported schema, checked by an independent JSON Schema implementation, accepts exactly the documents
    the validator accepts (on a corpus covering every field's type, bounds, enum, required-ness and pattern)."""
    import jsonschema

    printed = subprocess.run(
        [sys.executable, "-m", "zonda", "tasks", "execute", "--print-schema"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("ZONDA__")},
    )
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    assert schema == json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    disagreements = []
    for document in _schema_corpus():
        by_schema = validator.is_valid(document)
        try:
            parse_workload(json.dumps(document))
            ours = True
        except InvalidWorkload:
            ours = False
        if by_schema != ours:
            disagreements.append((document, by_schema, ours))
    assert disagreements == []


def test_help_documents_the_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zonda", "tasks", "execute", "--help"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "2 the workload is invalid" in text and "3 not claimed" in text


LOCAL_SPY = """
import json, os, sys
import zonda.executors.workload as module

original = module.execute_workload
calls = sys.argv[1]


def spy(runner, workload, **kwargs):
    with open(calls, "a") as handle:
        handle.write(json.dumps([os.getpid(), workload.task_id, workload.try_number]) + "\\n")
    return original(runner, workload, **kwargs)


module.execute_workload = spy
"""


def test_local_executor_and_the_command_call_the_same_entry_function(env: Env, tmp_path: Path) -> None:
    """Both paths go through zonda.executors.workload.execute_workload: a spy installed over it sees the
    LocalExecutor's task processes (forked after it was installed) and the command's process call it."""
    import zonda.executors.workload as module
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    calls = tmp_path / "calls.jsonl"
    original = module.execute_workload

    def spy(runner: Any, workload: Workload, **kwargs: Any) -> Any:
        with calls.open("a") as handle:
            handle.write(json.dumps([os.getpid(), workload.task_id, workload.try_number]) + "\n")
        return original(runner, workload, **kwargs)

    module.execute_workload = spy
    try:
        run_id = int(trigger_dag(env.engine, "exec_dag")["id"])
        scheduler = Scheduler(
            env.settings, executor=LocalExecutor(parallelism=2, settings=env.settings), metastore=env.metastore
        )
        h.drive(scheduler, [run_id], timeout=60)
    finally:
        module.execute_workload = original
    local = [json.loads(line) for line in calls.read_text().splitlines()]
    assert sorted((task, tries) for _, task, tries in local) == [("boom", 1), ("boom", 2), ("work", 1)]
    assert os.getpid() not in {pid for pid, _, _ in local}  # called in the task processes

    calls.unlink()
    work = env.queue_run()["work"]
    spy_file = tmp_path / "spy.py"
    spy_file.write_text(textwrap.dedent(LOCAL_SPY))
    code = (
        f"import runpy, sys; runpy.run_path({str(spy_file)!r}); "
        "from zonda.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(calls), "tasks", "execute", "--workload", env.workload_json(work)],
        capture_output=True,
        check=False,
        text=True,
        env=env.process_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)[1:] for line in calls.read_text().splitlines()] == [["work", 1]]
