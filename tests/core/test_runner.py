"""The in-process runner: retries and backoff, timeouts, skip/fail exceptions, callbacks, XComs, templates,
branching, mapping, TaskFlow and context access, recorded in a real SQLite metastore where it matters."""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from zonda import DAG, Param, TaskGroup, get_current_context, task
from zonda.exceptions import ParamValidationError, ZondaFailException, ZondaSkipException
from zonda.metastore.models import TaskInstanceModel, XComModel
from zonda.operators import (
    BashOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from zonda.runner.task_runner import retry_delay_seconds
from zonda.testing import run_dag

START = datetime(2024, 1, 1)


def _tis(metastore, dag_id: str) -> dict[str, TaskInstanceModel]:
    with metastore.session() as session:
        rows = session.scalars(select(TaskInstanceModel).where(TaskInstanceModel.dag_id == dag_id)).all()
    return {(r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]"): r for r in rows}


# --- retries ----------------------------------------------------------------------------------------------


def test_retries_until_success_and_records_each_attempt(zonda_metastore, zonda_settings) -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError(f"boom {len(calls)}")
        return "ok"

    with DAG("retry_dag", start_date=START) as dag:
        PythonOperator(task_id="flaky", python_callable=flaky, retries=2, retry_delay=timedelta(seconds=0.2))
    result = run_dag(dag, "2024-01-01", metastore=zonda_metastore)
    assert result.states() == {"flaky": "success"}
    assert len(calls) == 3
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(calls))
    row = _tis(zonda_metastore, "retry_dag")["flaky"]
    assert (row.state, row.try_number, row.max_tries) == ("success", 3, 2)
    assert row.hostname and row.pid == os.getpid() and row.duration is not None
    log_dir = zonda_settings.log_folder / "dag_id=retry_dag" / f"run_id={result.run.run_id}" / "task_id=flaky"
    assert sorted(p.name for p in log_dir.iterdir()) == ["attempt=1.log", "attempt=2.log", "attempt=3.log"]
    assert "boom 1" in (log_dir / "attempt=1.log").read_text()
    assert "Returned value: 'ok'" in (log_dir / "attempt=3.log").read_text()


def test_retries_exhausted_fails(zonda_home) -> None:
    with DAG("retry_fail", start_date=START) as dag:
        PythonOperator(task_id="bad", python_callable=lambda: 1 / 0, retries=1, retry_delay=0)
    result = run_dag(dag)
    ti = result.ti("bad")
    assert (ti.state.value, ti.try_number) == ("failed", 2)
    assert "ZeroDivisionError" in (ti.error or "")
    assert result.state == "failed"


def test_exponential_backoff_delays_and_cap() -> None:
    class T:
        retry_delay = timedelta(seconds=1)
        retry_exponential_backoff = True
        max_retry_delay = timedelta(seconds=3)

    assert [retry_delay_seconds(T, n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    T.max_retry_delay = None
    assert [retry_delay_seconds(T, n) for n in (1, 2, 3)] == [1, 2, 4]
    T.retry_exponential_backoff = False
    assert [retry_delay_seconds(T, n) for n in (1, 2, 3)] == [1, 1, 1]


@pytest.mark.parametrize(
    ("backoff", "cap"), [(True, timedelta(seconds=7)), (True, None), (False, None), (False, timedelta(seconds=1))]
)
def test_the_scheduler_waits_as_dags_test_does_before_a_retry(backoff: bool, cap: timedelta | None) -> None:
    """The scheduler reads the delay from the serialized DAG, ``dags test`` from the operator: same seconds."""
    from zonda.operators import EmptyOperator
    from zonda.scheduler.decisions import retry_ready_at
    from zonda.scheduler.serialized import SerializedDag
    from zonda.serialization import serialize_dag

    with DAG("retry_delays", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        op = EmptyOperator(
            task_id="t",
            retries=5,
            retry_delay=timedelta(seconds=2),
            retry_exponential_backoff=backoff,
            max_retry_delay=cap,
        )
    task = SerializedDag.from_json(serialize_dag(dag)[0]).tasks["t"]
    now = datetime(2024, 1, 1)
    waits = [(retry_ready_at(task, n, now) - now).total_seconds() for n in range(1, 6)]
    assert waits == [retry_delay_seconds(op, n) for n in range(1, 6)]
    assert waits[0] == (1 if cap == timedelta(seconds=1) else 2)


def test_exponential_backoff_timing_in_a_run(zonda_home) -> None:
    calls: list[float] = []

    def always_fails() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("nope")

    with DAG("backoff", start_date=START) as dag:
        PythonOperator(
            task_id="t",
            python_callable=always_fails,
            retries=3,
            retry_delay=timedelta(seconds=0.1),
            retry_exponential_backoff=True,
        )
    run_dag(dag)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert expected - 0.01 <= gap < expected + 0.5


def test_retry_wait_does_not_block_other_ready_tasks(zonda_home) -> None:
    order: list[str] = []

    def flaky() -> None:
        order.append("flaky")
        if order.count("flaky") == 1:
            raise RuntimeError("first try fails")

    with DAG("retry_parallel", start_date=START) as dag:
        PythonOperator(task_id="a_flaky", python_callable=flaky, retries=1, retry_delay=timedelta(seconds=0.3))
        PythonOperator(task_id="b_other", python_callable=lambda: order.append("other"))
    run_dag(dag)
    assert order == ["flaky", "other", "flaky"]


def test_fail_exception_skips_retries_and_skip_exception_skips(zonda_home) -> None:
    def fail() -> None:
        raise ZondaFailException("give up now")

    def skip() -> None:
        raise ZondaSkipException("not today")

    with DAG("fail_skip", start_date=START) as dag:
        PythonOperator(task_id="fail", python_callable=fail, retries=5, retry_delay=0)
        s = PythonOperator(task_id="skip", python_callable=skip)
        s >> EmptyOperator(task_id="after_skip")
    result = run_dag(dag)
    assert result.ti("fail").try_number == 1
    assert result.states() == {"fail": "failed", "skip": "skipped", "after_skip": "skipped"}


# --- timeouts -----------------------------------------------------------------------------------------------


def test_execution_timeout_stops_python_task(zonda_home) -> None:
    with DAG("timeout_py", start_date=START) as dag:
        PythonOperator(task_id="slow", python_callable=lambda: time.sleep(30), execution_timeout=timedelta(seconds=0.3))
    started = time.monotonic()
    result = run_dag(dag)
    assert time.monotonic() - started < 5
    ti = result.ti("slow")
    assert ti.state.value == "failed"
    assert "execution_timeout" in (ti.error or "")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_execution_timeout_kills_bash_process_tree(zonda_home, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = f"sleep 60 & echo $! >> {pids}; bash -c 'sleep 60 & echo $! >> {pids}; wait' & echo $! >> {pids}; wait"
    with DAG("timeout_bash", start_date=START) as dag:
        BashOperator(task_id="tree", bash_command=command, execution_timeout=timedelta(seconds=1), retries=0)
    started = time.monotonic()
    result = run_dag(dag)
    assert result.ti("tree").state.value == "failed"
    assert time.monotonic() - started < 10
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 3
    deadline = time.monotonic() + 3
    while any(_alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in recorded if _alive(p)], "processes of the Bash tree survived the timeout"


# --- callbacks ----------------------------------------------------------------------------------------------


def test_callbacks_fire_and_a_raising_callback_changes_nothing(zonda_home) -> None:
    seen: list[str] = []

    def record(name: str):
        return lambda context: seen.append(f"{name}:{context['ti'].task_id}")

    def explode(context) -> None:
        raise RuntimeError("callback bug")

    attempts = {"n": 0}

    def flaky() -> None:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("once")

    with DAG("callbacks", start_date=START) as dag:
        PythonOperator(task_id="ok", python_callable=lambda: None, on_success_callback=[explode, record("success")])
        PythonOperator(
            task_id="flaky",
            python_callable=flaky,
            retries=1,
            retry_delay=0,
            on_retry_callback=record("retry"),
            on_success_callback=record("success"),
        )
        PythonOperator(task_id="bad", python_callable=lambda: 1 / 0, on_failure_callback=[explode, record("failure")])
    result = run_dag(dag)
    assert result.states() == {"ok": "success", "flaky": "success", "bad": "failed"}
    assert sorted(seen) == ["failure:bad", "retry:flaky", "success:flaky", "success:ok"]
    log = result.ti("ok").log_path.read_text()
    assert "callback bug" in log and "state is unchanged" in log


# --- XCom ---------------------------------------------------------------------------------------------------


def test_xcom_values_round_trip_through_the_metastore(zonda_metastore) -> None:
    value = {"when": datetime(2024, 5, 1, 12, 30, 0, 123456), "amount": Decimal("12.30"), "pair": (1, 2)}
    received: dict = {}

    def push(ti) -> dict:
        ti.xcom_push(key="extra", value=[1, 2, 3])
        return value

    def pull(ti) -> None:
        received["value"] = ti.xcom_pull(task_ids="push")
        received["extra"] = ti.xcom_pull(task_ids="push", key="extra")
        received["many"] = ti.xcom_pull(task_ids=["push", "missing"], key="extra")

    with DAG("xcom_rt", start_date=START) as dag:
        PythonOperator(task_id="push", python_callable=push) >> PythonOperator(task_id="pull", python_callable=pull)
    assert run_dag(dag, metastore=zonda_metastore).succeeded
    assert received == {"value": value, "extra": [1, 2, 3], "many": [[1, 2, 3], None]}
    assert isinstance(received["value"]["pair"], tuple)


def test_oversized_xcom_fails_with_sizes_and_writes_nothing(zonda_home, zonda_metastore, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__XCOM__MAX_SIZE", "1000")
    with DAG("xcom_big", start_date=START) as dag:
        PythonOperator(task_id="big", python_callable=lambda: "x" * 5000, retries=3, retry_delay=0)
    result = run_dag(dag, metastore=zonda_metastore)
    ti = result.ti("big")
    assert (ti.state.value, ti.try_number) == ("failed", 1)
    assert "5,002 bytes" in ti.error and "1,000 bytes" in ti.error and "path" in ti.error
    with zonda_metastore.session() as session:
        assert session.scalars(select(XComModel).where(XComModel.dag_id == "xcom_big")).all() == []


def test_do_xcom_push_false_and_multiple_outputs(zonda_metastore) -> None:
    with DAG("xcom_flags", start_date=START) as dag:
        PythonOperator(task_id="quiet", python_callable=lambda: 42, do_xcom_push=False)

        @task(multiple_outputs=True)
        def split() -> dict:
            return {"a": 1, "b": "two"}

        @task
        def use(a, b) -> str:
            return f"{a}-{b}"

        parts = split()
        use(parts["a"], parts["b"])
    result = run_dag(dag, metastore=zonda_metastore)
    assert result.succeeded
    with zonda_metastore.session() as session:
        rows = session.scalars(select(XComModel).where(XComModel.dag_id == "xcom_flags")).all()
    keys = sorted((r.task_id, r.key) for r in rows)
    assert keys == [("split", "a"), ("split", "b"), ("split", "return_value"), ("use", "return_value")]
    assert next(r.value for r in rows if r.task_id == "use") == '"1-two"'


# --- templates ----------------------------------------------------------------------------------------------


def test_templates_render_context_params_and_files(zonda_home, tmp_path: Path) -> None:
    dag_file = tmp_path / "dags" / "my_dag.py"
    dag_file.parent.mkdir()
    (dag_file.parent / "hello.sh").write_text("echo 'file {{ ds_nodash }} {{ params.who }}'\n")
    with DAG("templates", start_date=START, params={"who": "zonda"}, fileloc=str(dag_file)) as dag:
        BashOperator(task_id="inline", bash_command="echo '{{ ds }} {{ params.who }} {{ dag_run.run_id }}'")
        BashOperator(task_id="from_file", bash_command="hello.sh")
        PythonOperator(
            task_id="py",
            python_callable=lambda x, templates_dict: (x, templates_dict["when"]),
            op_kwargs={"x": "{{ macros.ds_add(ds, 1) }}"},
            templates_dict={"when": "{{ logical_date.year }}"},
        )
    result = run_dag(dag, "2024-03-05", conf={"who": "you"})
    assert result.succeeded
    assert "2024-03-05 you test__2024-03-05" in result.ti("inline").log_path.read_text()
    assert "file 20240305 you" in result.ti("from_file").log_path.read_text()
    assert "('2024-03-06', '2024')" in result.ti("py").log_path.read_text()


def test_template_errors_fail_the_task_with_a_clear_message(zonda_home) -> None:
    with DAG("bad_templates", start_date=START) as dag:
        BashOperator(task_id="undefined", bash_command="echo {{ no_such_name }}")
        BashOperator(task_id="escape", bash_command="echo {{ ''.__class__.__mro__ }}")
    result = run_dag(dag)
    assert result.states() == {"undefined": "failed", "escape": "failed"}
    assert "no_such_name" in result.ti("undefined").error
    assert "TemplateRenderError" in result.ti("escape").error


def test_params_are_validated_against_conf() -> None:
    with DAG("param_check", start_date=START, params={"limit": Param(5, type="integer", minimum=1)}) as dag:
        EmptyOperator(task_id="t")
    with pytest.raises(ParamValidationError, match="limit"):
        run_dag(dag, conf={"limit": "many"})
    with pytest.raises(ParamValidationError, match=">= 1"):
        run_dag(dag, conf={"limit": 0})


# --- branching and short-circuit ----------------------------------------------------------------------------


def test_branch_follows_one_path_and_join_runs(zonda_home) -> None:
    with DAG("branching", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "left")
        left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
        right_next = EmptyOperator(task_id="right_next")
        join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
        pick >> [left, right]
        right >> right_next
        [left, right_next] >> join
    assert run_dag(dag).states() == {
        "pick": "success",
        "left": "success",
        "right": "skipped",
        "right_next": "skipped",
        "join": "success",
    }


def test_branch_to_task_group_and_taskflow_branch(zonda_home) -> None:
    with DAG("branch_group", start_date=START) as dag:

        @task.branch
        def choose() -> str:
            return "grp"

        with TaskGroup("grp") as grp:
            EmptyOperator(task_id="inner")
        other = EmptyOperator(task_id="other")
        choose() >> [grp, other]
    assert run_dag(dag).states() == {"choose": "success", "grp.inner": "success", "other": "skipped"}


def test_branch_to_unknown_task_fails(zonda_home) -> None:
    with DAG("branch_bad", start_date=START) as dag:
        BranchPythonOperator(task_id="pick", python_callable=lambda: "nowhere") >> EmptyOperator(task_id="a")
    result = run_dag(dag)
    assert result.ti("pick").state.value == "failed"
    assert "nowhere" in result.ti("pick").error


@pytest.mark.parametrize(
    ("ignore", "expected_final"), [(True, "skipped"), (False, "success")], ids=["skip-all", "respect-rules"]
)
def test_short_circuit_modes(zonda_home, ignore: bool, expected_final: str) -> None:
    with DAG(f"short_{ignore}", start_date=START) as dag:
        gate = ShortCircuitOperator(
            task_id="gate", python_callable=lambda: False, ignore_downstream_trigger_rules=ignore
        )
        nxt = EmptyOperator(task_id="next")
        final = EmptyOperator(task_id="final", trigger_rule="all_done")
        gate >> nxt >> final
    assert run_dag(dag).states() == {"gate": "success", "next": "skipped", "final": expected_final}


# --- mapping ------------------------------------------------------------------------------------------------


def test_mapped_tasks_expand_over_literals_and_upstream_output(zonda_metastore) -> None:
    with DAG("mapping", start_date=START) as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task
        def scale(x: int, factor: int) -> int:
            return x * factor

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        scaled = scale.partial(factor=10).expand(x=numbers())
        total(scaled)
        squares = PythonOperator.partial(task_id="square", python_callable=lambda v: v * v).expand(op_args=[[2], [3]])
        total.override(task_id="sum_squares")(squares.output)

        @task
        def nothing() -> list:
            return []

        scale.override(task_id="empty_map").partial(factor=1).expand(x=nothing())
    result = run_dag(dag, metastore=zonda_metastore)
    states = result.states()
    assert states["scale[0]"] == states["scale[2]"] == "success"
    assert states["empty_map"] == "skipped"
    assert result.ti("total").state.value == "success"
    rows = _tis(zonda_metastore, "mapping")
    assert sorted(k for k in rows if k.startswith("scale")) == ["scale[0]", "scale[1]", "scale[2]"]
    with zonda_metastore.session() as session:
        values = {
            (r.task_id, r.map_index): r.value
            for r in session.scalars(select(XComModel).where(XComModel.dag_id == "mapping"))
        }
    assert values[("total", -1)] == "60"
    assert values[("sum_squares", -1)] == "13"
    assert [values[("scale", i)] for i in range(3)] == ["10", "20", "30"]


def test_expand_kwargs_and_cross_product(zonda_home) -> None:
    got: list = []
    with DAG("mapping2", start_date=START) as dag:

        @task
        def pair(a, b) -> None:
            got.append((a, b))

        pair.expand(a=[1, 2], b=["x", "y"])
        pair.override(task_id="kw").expand_kwargs([{"a": 9, "b": "z"}])
    assert run_dag(dag).succeeded
    assert sorted(got) == [(1, "x"), (1, "y"), (2, "x"), (2, "y"), (9, "z")]


# --- context ------------------------------------------------------------------------------------------------


def test_context_injection_and_get_current_context(zonda_home) -> None:
    seen: dict = {}

    def by_name(ds, ti, params, run_id) -> None:
        seen["by_name"] = (ds, ti.task_id, params["p"], run_id)

    def by_kwargs(**context) -> None:
        seen["kwargs_keys"] = {"ds", "logical_date", "data_interval_start", "dag", "ti"} <= set(context)

    def current() -> None:
        seen["current"] = get_current_context()["task"].task_id

    with DAG("ctx", start_date=START, schedule="@daily", params={"p": 1}) as dag:
        PythonOperator(task_id="by_name", python_callable=by_name)
        PythonOperator(task_id="by_kwargs", python_callable=by_kwargs)
        PythonOperator(task_id="current", python_callable=current)
    result = run_dag(dag, "2024-02-03")
    assert result.succeeded
    assert seen["by_name"] == ("2024-02-03", "by_name", 1, result.run.run_id)
    assert seen["kwargs_keys"] is True
    assert seen["current"] == "current"
    # @daily is a trigger schedule (Airflow 3): a run for a date covers the empty interval at that moment.
    assert result.run.data_interval_end == datetime(2024, 2, 3, tzinfo=result.run.data_interval_end.tzinfo)


def test_bash_exit_codes(zonda_home) -> None:
    with DAG("bash_codes", start_date=START) as dag:
        BashOperator(task_id="skip", bash_command="exit 99")
        BashOperator(task_id="fail", bash_command="echo oops >&2; exit 3")
        BashOperator(task_id="ok", bash_command="echo hello", env={"X": "1"})
    result = run_dag(dag)
    assert result.states() == {"skip": "skipped", "fail": "failed", "ok": "success"}
    assert "3" in result.ti("fail").error and "oops" in result.ti("fail").error


@pytest.mark.parametrize("metastore_url", ["sqlite", "postgres", "mysql"], indirect=True)
def test_runs_are_recorded_on_every_metastore(metastore_url: str, zonda_home) -> None:
    from zonda.metastore.db import Metastore

    metastore = Metastore(metastore_url)
    metastore.init()
    with DAG("on_all_dbs", start_date=START) as dag:

        @task
        def one() -> dict:
            return {"n": 1, "when": datetime(2024, 1, 1, 0, 0, 0, 5)}

        @task
        def two(value: dict) -> int:
            return value["n"] + 1

        PythonOperator(task_id="fails", python_callable=lambda: 1 / 0)
        two(one())
    result = run_dag(dag, "2024-01-01", metastore=metastore)
    assert result.state == "failed"
    rows = _tis(metastore, "on_all_dbs")
    assert {k: r.state for k, r in rows.items()} == {"one": "success", "two": "success", "fails": "failed"}
    assert rows["one"].end_date >= rows["one"].start_date
    metastore.engine.dispose()
