"""Deferral in process (``zonda dags test`` / ``run_dag``, no triggerer): the trigger runs inline and the task
resumes at once in the same try; failures, timeouts and sensors' deferrable mode."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from zonda import DAG
from zonda.exceptions import TaskDeferred
from zonda.metastore import tables as t
from zonda.operators.base import BaseOperator
from zonda.sensors import FileSensor, PythonSensor, TimeDeltaSensor
from zonda.testing import run_dag
from zonda.triggers import BaseTrigger, DateTimeTrigger, TimeDeltaTrigger, TriggerEvent

START = datetime(2024, 1, 1, tzinfo=UTC)


class RaisingTrigger(BaseTrigger):
    def serialize(self):
        return f"{type(self).__module__}.RaisingTrigger", {}

    async def run(self):
        raise RuntimeError("the trigger exploded")
        yield TriggerEvent(None)  # pragma: no cover


class NeverTrigger(BaseTrigger):
    def serialize(self):
        return f"{type(self).__module__}.NeverTrigger", {}

    async def run(self):
        import asyncio

        await asyncio.sleep(3600)
        yield TriggerEvent(None)  # pragma: no cover


class DeferOnce(BaseOperator):
    """Defers once on a short TimeDeltaTrigger and returns what it resumed with."""

    def __init__(self, *, trigger_factory=None, timeout=None, defer_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.trigger_factory = trigger_factory or (lambda: TimeDeltaTrigger(timedelta(seconds=0.1)))
        self.defer_timeout = timeout
        self.defer_kwargs = {"note": "hello"} if defer_kwargs is None else defer_kwargs
        self.executions = 0

    def execute(self, context):
        self.executions += 1
        self.defer(
            trigger=self.trigger_factory(),
            method_name="resume",
            kwargs=self.defer_kwargs,
            timeout=self.defer_timeout,
        )

    def resume(self, context, event=None, note=None):
        return {
            "event": event.isoformat() if isinstance(event, datetime) else event,
            "note": note,
            "try": context["ti"].try_number,
            "executions": self.executions,
        }


def _log(settings, result, task_id: str, attempt: int = 1) -> str:
    path = (
        settings.log_folder
        / f"dag_id={result.run.dag_id}"
        / f"run_id={result.run.run_id}"
        / f"task_id={task_id}"
        / f"attempt={attempt}.log"
    )
    return path.read_text()


def test_defer_raises_task_deferred() -> None:
    op = DeferOnce(task_id="x")
    with pytest.raises(TaskDeferred) as info:
        op.defer(trigger=TimeDeltaTrigger(1), method_name="resume", kwargs={"a": 1}, timeout=5)
    assert info.value.method_name == "resume" and info.value.kwargs == {"a": 1} and info.value.timeout == 5
    assert not isinstance(info.value, Exception)  # a task's `except Exception` cannot swallow it


def test_custom_operator_defers_and_resumes_with_the_event_in_one_try(zonda_metastore, zonda_settings) -> None:
    with DAG("defer_custom", start_date=START, schedule=None) as dag:
        DeferOnce(task_id="wait")
    started = time.monotonic()
    result = run_dag(dag, START, metastore=zonda_metastore)
    assert time.monotonic() - started < 5
    assert result.states() == {"wait": "success"}
    with zonda_metastore.engine.connect() as conn:
        row = conn.execute(select(t.task_instance).where(t.task_instance.c.dag_id == "defer_custom")).one()
        value = conn.execute(select(t.xcom.c.value).where(t.xcom.c.dag_id == "defer_custom")).scalar_one()
        assert conn.execute(select(t.trigger)).all() == []  # nothing for a triggerer: it ran inline
    assert (row.state, row.try_number) == ("success", 1)
    from zonda import serde

    returned = serde.loads(value)
    assert returned["note"] == "hello" and returned["try"] == 1 and returned["executions"] == 1
    assert datetime.fromisoformat(returned["event"]) <= datetime.now(UTC)
    log = _log(zonda_settings, result, "wait")
    assert "no triggerer in this run, so the trigger runs here" in log


def test_time_delta_sensor_deferrable_waits_inline(zonda_home, zonda_settings) -> None:
    logical = datetime.now(UTC)  # schedule=None: the data interval ends at the logical date
    with DAG("defer_tds", start_date=START, schedule=None) as dag:
        TimeDeltaSensor(task_id="later", delta=timedelta(seconds=0.4), deferrable=True, poke_interval=60)
        TimeDeltaSensor(task_id="past", delta=timedelta(seconds=-10), deferrable=True)
    result = run_dag(dag, logical)
    done = datetime.now(UTC)
    assert result.states() == {"later": "success", "past": "success"}
    assert result.ti("later").try_number == 1
    # Woken at the target, not after a 60 s poke_interval.
    assert logical + timedelta(seconds=0.4) <= done < logical + timedelta(seconds=3)
    assert "Deferring until" in _log(zonda_settings, result, "later")
    assert "has already come" in _log(zonda_settings, result, "past")


def test_deferrable_python_sensor_repokes_and_times_out_from_its_first_poke(zonda_home) -> None:
    pokes: list[float] = []

    def never() -> bool:
        pokes.append(time.monotonic())
        return False

    with DAG("defer_ps", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="never", python_callable=never, poke_interval=0.1, timeout=0.5, deferrable=True)
        PythonSensor(
            task_id="soft",
            python_callable=lambda: False,
            poke_interval=0.1,
            timeout=0.2,
            soft_fail=True,
            deferrable=True,
        )
    result = run_dag(dag, START)
    assert result.states() == {"never": "failed", "soft": "skipped"}
    assert "timed out" in (result.ti("never").error or "")
    assert 4 <= len(pokes) <= 8
    assert pokes[-1] - pokes[0] == pytest.approx(0.5, abs=0.2)


def test_deferrable_python_sensor_succeeds_when_the_condition_holds(zonda_home) -> None:
    calls = {"n": 0}

    def third_time() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    with DAG("defer_ps_ok", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="s", python_callable=third_time, poke_interval=0.05, deferrable=True)
    result = run_dag(dag, START)
    assert result.states() == {"s": "success"} and calls["n"] == 3 and result.ti("s").try_number == 1


def test_deferrable_file_sensor(zonda_home, tmp_path: Path) -> None:
    target = tmp_path / "drop" / "ready.txt"
    target.parent.mkdir()
    timer = threading.Timer(0.3, target.write_text, args=("ok",))
    with DAG("defer_fs", start_date=START, schedule=None) as dag:
        FileSensor(task_id="file", filepath=str(tmp_path / "drop" / "*.txt"), poke_interval=0.05, deferrable=True)
        FileSensor(
            task_id="missing", filepath=str(tmp_path / "never.txt"), poke_interval=0.05, timeout=0.3, deferrable=True
        )
    timer.start()
    try:
        result = run_dag(dag, START)
    finally:
        timer.cancel()
    assert result.states() == {"file": "success", "missing": "failed"}
    assert "timed out" in (result.ti("missing").error or "")


def test_raising_trigger_fails_the_task_with_its_traceback(zonda_home, zonda_settings) -> None:
    with DAG("defer_raise", start_date=START, schedule=None) as dag:
        DeferOnce(task_id="boom", trigger_factory=RaisingTrigger, retries=1, retry_delay=0)
    result = run_dag(dag, START)
    assert result.states() == {"boom": "failed"}
    assert result.ti("boom").try_number == 2  # a trigger failure is a failure like any other: retries apply
    log = _log(zonda_settings, result, "boom", attempt=1)
    assert "Traceback" in log and "RuntimeError: the trigger exploded" in log
    assert "TriggerError" in (result.ti("boom").error or "")


def test_trigger_timeout_fails_the_task(zonda_home) -> None:
    with DAG("defer_timeout", start_date=START, schedule=None) as dag:
        DeferOnce(task_id="slow", trigger_factory=NeverTrigger, timeout=timedelta(seconds=0.2))
    started = time.monotonic()
    result = run_dag(dag, START)
    assert time.monotonic() - started < 3
    assert result.states() == {"slow": "failed"}
    assert "did not fire within its timeout of 0.2 s" in (result.ti("slow").error or "")


def test_execution_timeout_bounds_an_inline_deferral(zonda_home) -> None:
    with DAG("defer_exec_timeout", start_date=START, schedule=None) as dag:
        DeferOnce(task_id="slow", trigger_factory=NeverTrigger, execution_timeout=timedelta(seconds=0.3))
    started = time.monotonic()
    result = run_dag(dag, START)
    assert time.monotonic() - started < 3
    assert result.states() == {"slow": "failed"}
    assert "execution_timeout" in (result.ti("slow").error or "")


def test_non_json_defer_kwargs_fail_clearly(zonda_home) -> None:
    with DAG("defer_bad", start_date=START, schedule=None) as dag:
        DeferOnce(task_id="bad", defer_kwargs={"thing": object()})
        DeferOnce(task_id="naive", trigger_factory=lambda: DateTimeTrigger(datetime(2030, 1, 1)))
    result = run_dag(dag, START)
    assert result.states() == {"bad": "failed", "naive": "failed"}
    assert "must be JSON-serializable" in (result.ti("bad").error or "")
    assert "timezone-aware" in (result.ti("naive").error or "")


def test_unknown_resume_method_fails_clearly(zonda_home) -> None:
    class Wrong(BaseOperator):
        def execute(self, context):
            self.defer(trigger=TimeDeltaTrigger(0), method_name="no_such_method")

    with DAG("defer_wrong", start_date=START, schedule=None) as dag:
        Wrong(task_id="w")
    result = run_dag(dag, START)
    assert result.states() == {"w": "failed"}
    assert "has no such method" in (result.ti("w").error or "")
