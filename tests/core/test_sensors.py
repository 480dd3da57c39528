"""Sensors: the poke loop, timeouts, soft_fail, backoff, argument checks, and the built-in sensors."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from zonda.exceptions import (
    DagDefinitionError,
    ZondaException,
    ZondaFailException,
    ZondaSensorTimeout,
    ZondaSkipException,
    ZondaTaskTimeout,
)
from zonda.sensors import BaseSensor, FileSensor, PokeReturnValue, PythonSensor, TimeDeltaSensor


class StubTI:
    dag_id = "dag_a"
    task_id = "s"
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return None


def make_context(**extra: Any) -> dict[str, Any]:
    logical = datetime(2024, 1, 1, tzinfo=UTC)
    context = {
        "ds": "2024-01-01",
        "logical_date": logical,
        "data_interval_start": logical,
        "data_interval_end": logical + timedelta(days=1),
        "run_id": "manual__x",
        "ti": StubTI(),
        "params": {},
    }
    context.update(extra)
    return context


class CountingSensor(BaseSensor):
    """Done on the ``done_at``-th poke (never when None)."""

    def __init__(self, *, done_at: int | None, result: Any = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.done_at = done_at
        self.result = result
        self.pokes = 0
        self.poke_times: list[float] = []

    def poke(self, context):
        self.pokes += 1
        self.poke_times.append(time.monotonic())
        return self.result if self.pokes == self.done_at else False


# --- the loop -------------------------------------------------------------------------------------------


def test_pokes_until_done_and_returns_none_for_bool():
    sensor = CountingSensor(task_id="s", done_at=3, poke_interval=0.01)
    assert sensor.execute(make_context()) is None
    assert sensor.pokes == 3


def test_poke_return_value_becomes_the_xcom():
    sensor = CountingSensor(task_id="s", done_at=2, poke_interval=0.01, result=PokeReturnValue(True, {"rows": 5}))
    assert sensor.execute(make_context()) == {"rows": 5}


def test_poke_return_value_truthiness():
    assert PokeReturnValue(True)
    assert not PokeReturnValue(False, xcom_value="x")


def test_timeout_raises_sensor_timeout_with_a_clear_message():
    sensor = CountingSensor(task_id="waiter", done_at=None, poke_interval=0.05, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ZondaSensorTimeout) as info:
        sensor.execute(make_context())
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "waiter" in message
    assert "CountingSensor" in message
    assert "timeout is 0.2s" in message
    assert "soft_fail" in message
    # Bounded by the timeout: the last poke happens at the deadline, not an interval after it.
    assert 0.2 <= elapsed < 0.4
    assert isinstance(info.value, ZondaFailException)  # not retried


def test_wait_never_overshoots_the_timeout():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=30, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ZondaSensorTimeout):
        sensor.execute(make_context())
    assert time.monotonic() - started < 0.5
    assert sensor.pokes == 2  # one at the start, one at the deadline


def test_zero_timeout_pokes_once():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=0, timeout=0)
    with pytest.raises(ZondaSensorTimeout):
        sensor.execute(make_context())
    assert sensor.pokes == 1


def test_soft_fail_skips_on_timeout():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=0.01, timeout=0.05, soft_fail=True)
    with pytest.raises(ZondaSkipException, match="soft_fail"):
        sensor.execute(make_context())


def test_soft_fail_skips_on_execution_timeout():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=0.05, timeout=60, soft_fail=True)

    def on_alarm(signum, frame):
        raise ZondaTaskTimeout("execution_timeout")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.15)
        with pytest.raises(ZondaSkipException):
            sensor.execute(make_context())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_other_poke_errors_fail_even_with_soft_fail():
    class Broken(BaseSensor):
        def poke(self, context):
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        Broken(task_id="s", soft_fail=True).execute(make_context())


def test_reschedule_mode_waits_in_process_and_says_so(caplog):
    caplog.set_level("INFO", logger="zonda.task")
    sensor = CountingSensor(task_id="s", done_at=2, poke_interval=0.01, mode="reschedule")
    assert sensor.reschedule
    sensor.execute(make_context())
    assert any("waits in process between pokes" in r.getMessage() for r in caplog.records)


def test_exponential_backoff_grows_with_jitter_and_respects_max_wait():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=1, exponential_backoff=True)
    for n in range(1, 8):
        base = 2 ** (n - 1)
        for _ in range(20):
            assert base / 2 <= sensor._get_next_poke_interval(n) <= base
    assert len({sensor._get_next_poke_interval(5) for _ in range(10)}) > 1  # jitter
    capped = CountingSensor(
        task_id="s", done_at=None, poke_interval=1, exponential_backoff=True, max_wait=timedelta(seconds=3)
    )
    assert capped._get_next_poke_interval(10) == 3
    assert capped._get_next_poke_interval(10_000) == 3  # no overflow


def test_exponential_backoff_loop_is_bounded_by_timeout():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=0.02, exponential_backoff=True, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ZondaSensorTimeout):
        sensor.execute(make_context())
    assert time.monotonic() - started < 0.6
    gaps = [b - a for a, b in zip(sensor.poke_times, sensor.poke_times[1:], strict=False)]
    assert gaps[-2] > gaps[0]  # waits grow


def test_max_wait_without_backoff_caps_poke_interval():
    sensor = CountingSensor(task_id="s", done_at=None, poke_interval=10, max_wait=0.5)
    assert sensor._get_next_poke_interval(1) == 0.5


def test_timedelta_arguments():
    sensor = CountingSensor(
        task_id="s", done_at=1, poke_interval=timedelta(milliseconds=10), timeout=timedelta(minutes=1)
    )
    assert sensor.poke_interval == 0.01
    assert sensor.timeout == 60


def test_defaults_match_airflow():
    sensor = CountingSensor(task_id="s", done_at=1)
    assert sensor.poke_interval == 60
    assert sensor.timeout == 7 * 24 * 3600
    assert sensor.mode == "poke"
    assert sensor.soft_fail is False
    assert sensor.exponential_backoff is False
    assert sensor.max_wait is None
    assert sensor.deferrable is False


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"poke_interval": -1}, "poke_interval must be >= 0"),
        ({"timeout": -5}, "timeout must be >= 0"),
        ({"timeout": timedelta(seconds=-1)}, "timeout must be >= 0"),
        ({"max_wait": -1}, "max_wait must be >= 0"),
        ({"poke_interval": "10"}, "poke_interval must be a number"),
        ({"mode": "smart"}, "mode must be one of 'poke', 'reschedule'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(DagDefinitionError, match=match):
        CountingSensor(task_id="s", done_at=1, **kwargs)


def test_base_poke_not_implemented():
    with pytest.raises(NotImplementedError):
        BaseSensor(task_id="s", timeout=0).execute(make_context())


def test_default_args_reach_sensor_arguments():
    from zonda import DAG

    with DAG("d", schedule=None, start_date=datetime(2024, 1, 1), default_args={"poke_interval": 5}):
        sensor = CountingSensor(task_id="s", done_at=1)
    assert sensor.poke_interval == 5


# --- PythonSensor -----------------------------------------------------------------------------------------


def test_python_sensor_bool_and_context_injection():
    calls: list[Any] = []

    def check(threshold, ds, templates_dict):
        calls.append((threshold, ds, templates_dict))
        return len(calls) >= threshold

    sensor = PythonSensor(
        task_id="s", python_callable=check, op_args=[2], templates_dict={"k": "v"}, poke_interval=0.01
    )
    assert sensor.execute(make_context()) is None
    assert calls == [(2, "2024-01-01", {"k": "v"})] * 2


def test_python_sensor_poke_return_value():
    sensor = PythonSensor(
        task_id="s", python_callable=lambda: PokeReturnValue(True, xcom_value=[1, 2]), poke_interval=0.01
    )
    assert sensor.execute(make_context()) == [1, 2]


def test_python_sensor_kwargs_and_truthy_values():
    sensor = PythonSensor(task_id="s", python_callable=lambda n: [n], op_kwargs={"n": 1})
    assert sensor.poke(make_context()) == PokeReturnValue(True)


def test_python_sensor_timeout():
    sensor = PythonSensor(task_id="s", python_callable=lambda: False, poke_interval=0.01, timeout=0.05)
    with pytest.raises(ZondaSensorTimeout):
        sensor.execute(make_context())


def test_python_sensor_requires_callable():
    with pytest.raises(ZondaException, match="callable"):
        PythonSensor(task_id="s", python_callable="nope")  # type: ignore[arg-type]


def test_python_sensor_template_fields():
    assert set(PythonSensor.template_fields) == {"templates_dict", "op_args", "op_kwargs"}


# --- FileSensor -------------------------------------------------------------------------------------------


def test_file_sensor_file(tmp_path: Path):
    target = tmp_path / "data.csv"
    sensor = FileSensor(task_id="s", filepath=str(target), poke_interval=0.01)
    assert not sensor.poke(make_context())
    target.write_text("x")
    assert sensor.poke(make_context())


def test_file_sensor_glob(tmp_path: Path):
    sensor = FileSensor(task_id="s", filepath=str(tmp_path / "part-*.parquet"))
    (tmp_path / "other.txt").write_text("")
    assert not sensor.poke(make_context())
    (tmp_path / "part-0001.parquet").write_text("")
    assert sensor.poke(make_context())


def test_file_sensor_recursive_glob(tmp_path: Path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.done").write_text("")
    pattern = str(tmp_path / "**" / "*.done")
    assert not FileSensor(task_id="s", filepath=pattern).poke(make_context())
    assert FileSensor(task_id="s", filepath=pattern, recursive=True).poke(make_context())


def test_file_sensor_directory_counts_only_with_a_file_inside(tmp_path: Path):
    directory = tmp_path / "landing"
    sensor = FileSensor(task_id="s", filepath=directory)
    assert not sensor.poke(make_context())
    directory.mkdir()
    (directory / "empty_sub").mkdir()
    assert not sensor.poke(make_context())
    (directory / "empty_sub" / "file").write_text("")
    assert sensor.poke(make_context())


def test_file_sensor_waits_for_a_file_written_later(tmp_path: Path):
    target = tmp_path / "late"
    timer = threading.Timer(0.1, target.write_text, args=("x",))
    timer.start()
    try:
        FileSensor(task_id="s", filepath=str(target), poke_interval=0.02, timeout=5).execute(make_context())
    finally:
        timer.cancel()
    assert target.exists()


def test_file_sensor_template_fields():
    assert FileSensor.template_fields == ("filepath",)


# --- TimeDeltaSensor --------------------------------------------------------------------------------------


def test_time_delta_sensor_past_target_is_done_at_once():
    sensor = TimeDeltaSensor(task_id="s", delta=timedelta(hours=1), poke_interval=0.01)
    assert sensor.execute(make_context()) is None


def test_time_delta_sensor_waits_until_target():
    now = datetime.now(UTC)
    context = make_context(data_interval_end=now)
    sensor = TimeDeltaSensor(task_id="s", delta=timedelta(milliseconds=200), poke_interval=60)
    started = time.monotonic()
    sensor.execute(context)
    waited = time.monotonic() - started
    # It slept until the target, not a whole poke_interval.
    assert 0.1 <= waited < 1.0
    assert datetime.now(UTC) > now + timedelta(milliseconds=200)


def test_time_delta_sensor_future_target_times_out():
    context = make_context(data_interval_end=datetime.now(UTC) + timedelta(hours=1))
    sensor = TimeDeltaSensor(task_id="s", delta=timedelta(0), poke_interval=0.01, timeout=0.05)
    with pytest.raises(ZondaSensorTimeout):
        sensor.execute(context)


def test_time_delta_sensor_falls_back_to_logical_date_and_accepts_naive():
    context = make_context()
    del context["data_interval_end"]
    context["logical_date"] = datetime.now() + timedelta(hours=1)  # naive means UTC
    sensor = TimeDeltaSensor(task_id="s", delta=timedelta(seconds=0))
    assert sensor.target_datetime(context).tzinfo is not None
    assert not sensor.poke(context)


def test_time_delta_sensor_without_dates_is_a_clear_error():
    sensor = TimeDeltaSensor(task_id="s", delta=timedelta(0))
    with pytest.raises(ZondaException, match="neither data_interval_end nor logical_date"):
        sensor.poke({"ti": StubTI()})


def test_time_delta_sensor_delta_validation():
    assert TimeDeltaSensor(task_id="s", delta=5).delta == timedelta(seconds=5)
    with pytest.raises(DagDefinitionError):
        TimeDeltaSensor(task_id="s", delta="1h")  # type: ignore[arg-type]


# --- package ----------------------------------------------------------------------------------------------


def test_public_names():
    import zonda.sensors

    assert sorted(zonda.sensors.__all__) == [
        "BaseSensor",
        "BashSensor",
        "DateTimeSensor",
        "DateTimeSensorAsync",
        "ExternalTaskSensor",
        "FileSensor",
        "PokeReturnValue",
        "PythonSensor",
        "TimeDeltaSensor",
        "TimeSensor",
        "TimeSensorAsync",
    ]
    with pytest.raises(AttributeError):
        zonda.sensors.NoSuchSensor  # noqa: B018
