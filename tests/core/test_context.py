"""zonda.context, zonda.macros and zonda.runtime: what a running task sees."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from zonda.config import load_settings
from zonda.context import CONTEXT_KEYS, Context, build_context
from zonda.exceptions import ZondaException
from zonda.macros import Macros, datetime_diff_for_humans, default_macros, ds_add, ds_format
from zonda.runtime import get_current_context, set_current_context


def make_run(**overrides):
    values = {
        "run_id": "scheduled__2024-03-05T06:07:08+00:00",
        "logical_date": datetime(2024, 3, 5, 6, 7, 8, tzinfo=UTC),
        "data_interval_start": datetime(2024, 3, 5, tzinfo=UTC),
        "data_interval_end": datetime(2024, 3, 6, tzinfo=UTC),
        "conf": {"x": 1},
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def make_context(**kwargs):
    args = {"dag": "DAG", "task": "TASK", "dag_run": make_run(), "ti": "TI", "params": {"p": 1}}
    args.update(kwargs)
    return build_context(**args)


# ------------------------------------------------------------------------------------------------ context


def test_context_has_every_documented_key(tmp_path):
    settings = load_settings(home=tmp_path, environ={})
    ti = object()
    params = {"p": 1}
    run = make_run()
    context = build_context(dag="DAG", task="TASK", dag_run=run, ti=ti, params=params, settings=settings)
    assert isinstance(context, Context)
    assert isinstance(context, dict)
    assert set(CONTEXT_KEYS) == set(context)
    for key in (
        "ds",
        "ds_nodash",
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "run_id",
        "dag",
        "dag_run",
        "ti",
        "params",
        "conf",
        "macros",
        "ts",
        "ts_nodash",
        "task",
        "task_instance",
        "test_mode",
    ):
        assert key in context
    assert context["ds"] == "2024-03-05"
    assert context["ds_nodash"] == "20240305"
    assert context["ts"] == "2024-03-05T06:07:08+00:00"
    assert context["ts_nodash"] == "20240305T060708"
    assert context["ts_nodash_with_tz"] == "20240305T060708+0000"
    assert context["logical_date"] == run.logical_date
    assert context["execution_date"] == run.logical_date
    assert context["data_interval_start"] == run.data_interval_start
    assert context["data_interval_end"] == run.data_interval_end
    assert context["run_id"] == run.run_id
    assert context["dag"] == "DAG"
    assert context["task"] == "TASK"
    assert context["dag_run"] is run
    assert context["ti"] is ti
    assert context["task_instance"] is ti
    assert context["params"] is params  # no copy
    assert context["conf"] is settings
    assert context["conf"].get("xcom", "max_size") == 1024 * 1024
    assert context["test_mode"] is False
    assert context["macros"].ds_add("2024-01-01", 1) == "2024-01-02"


def test_logical_date_none_uses_data_interval_start():
    run = make_run(logical_date=None)
    context = make_context(dag_run=run)
    assert context["logical_date"] == run.data_interval_start
    assert context["ds"] == "2024-03-05"


def test_no_dates_at_all_uses_now():
    before = datetime.now(UTC)
    context = make_context(dag_run=make_run(logical_date=None, data_interval_start=None, data_interval_end=None))
    assert before <= context["logical_date"] <= datetime.now(UTC)
    assert context["data_interval_start"] == context["logical_date"]
    assert context["data_interval_end"] == context["logical_date"]


def test_non_utc_logical_date_keeps_its_offset():
    tz = datetime(2024, 1, 1, 23, 30, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    context = make_context(dag_run=make_run(logical_date=tz))
    assert context["ds"] == "2024-01-02"
    assert context["ts"].endswith("+09:00")


def test_caller_macros_extra_and_test_mode():
    macros = default_macros({"company": "acme"})
    context = make_context(macros=macros, extra={"ds": "override", "var": "v"}, test_mode=True, params=None)
    assert context["macros"] is macros
    assert context["ds"] == "override"
    assert context["var"] == "v"
    assert context["test_mode"] is True
    assert context["params"] == {}


def test_missing_key_lists_known_keys():
    context = make_context()
    with pytest.raises(KeyError, match=r"not in the task context.*ds_nodash"):
        context["next_ds"]
    assert context.get("next_ds") is None


def test_building_is_cheap():
    import time

    run = make_run()
    macros = default_macros()
    start = time.perf_counter()
    for _ in range(1000):
        build_context(dag=None, task=None, dag_run=run, ti=None, params={}, macros=macros)
    assert (time.perf_counter() - start) / 1000 < 200e-6  # generous: typically a few microseconds


# ------------------------------------------------------------------------------------------------ macros


def test_ds_add_and_ds_format():
    assert ds_add("2015-01-06", -5) == "2015-01-01"
    assert ds_add("2015-01-01", 5) == "2015-01-06"
    assert ds_add("2015-01-01", 0) == "2015-01-01"
    assert ds_format("2015-01-01", "%Y-%m-%d", "%m-%d-%y") == "01-01-15"
    assert ds_format("1/5/2015", "%m/%d/%Y", "%Y-%m-%d") == "2015-01-05"


def test_airflow_macro_names():
    macros = default_macros()
    assert macros.datetime is datetime
    assert macros.timedelta is timedelta
    assert macros.json.loads("[1]") == [1]
    assert isinstance(macros.time.time(), float)
    assert len(str(macros.uuid.uuid4())) == 36
    assert 0 <= macros.random() < 1  # random.random, as in Airflow
    with pytest.raises(AttributeError, match="ds_add"):
        macros.dateutil  # noqa: B018 -- dateutil-free on purpose


def test_datetime_diff_for_humans():
    base = datetime(2024, 1, 10, tzinfo=UTC)
    assert datetime_diff_for_humans(base - timedelta(days=3), base) == "3 days before"
    assert datetime_diff_for_humans(base + timedelta(hours=1), base) == "1 hour after"
    assert datetime_diff_for_humans(datetime.now(UTC) - timedelta(minutes=5)) == "5 minutes ago"
    assert datetime_diff_for_humans(datetime.now(UTC) + timedelta(days=15)).startswith("in 2 weeks")
    assert datetime_diff_for_humans(datetime(2024, 1, 10), base) == "a few seconds before"


def test_macros_extend_without_changing_the_original():
    base = default_macros()
    extended = base.merged({"plugin": SimpleNamespace(f=lambda: 1)})
    assert isinstance(extended, Macros)
    assert extended.plugin.f() == 1
    assert extended.ds_add is base.ds_add
    assert not hasattr(base, "plugin")
    assert base.merged(None) is base
    assert default_macros() is not default_macros()  # fresh each time: mutating one never leaks


def test_light_imports():
    code = (
        "import sys; import zonda.context, zonda.runtime, zonda.xcom, zonda.serde, zonda.macros; "
        "bad = [m for m in ('jinja2', 'zonda.templating', 'uuid', 'random', 'decimal') if m in sys.modules]; "
        "print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ runtime


def test_get_current_context_outside_a_task_is_a_clear_error():
    with pytest.raises(ZondaException, match="only works inside a running task"):
        get_current_context()


def test_set_current_context_nests_and_restores():
    outer, inner = make_context(), make_context(extra={"ds": "inner"})
    with set_current_context(outer) as entered:
        assert entered is outer
        assert get_current_context() is outer
        with set_current_context(inner):
            assert get_current_context()["ds"] == "inner"
        assert get_current_context() is outer
    with pytest.raises(ZondaException):
        get_current_context()


def test_context_is_restored_after_an_exception():
    with pytest.raises(RuntimeError), set_current_context(make_context()):
        raise RuntimeError("task failed")
    with pytest.raises(ZondaException):
        get_current_context()


def test_threads_do_not_see_the_context_unless_copied():
    context = make_context()
    seen = {}

    def look(name):
        try:
            seen[name] = get_current_context()
        except ZondaException:
            seen[name] = None

    with set_current_context(context):
        plain = threading.Thread(target=look, args=("plain",))
        copied_ctx = contextvars.copy_context()
        copied = threading.Thread(target=copied_ctx.run, args=(look, "copied"))
        plain.start(), copied.start()
        plain.join(), copied.join()
    assert seen == {"plain": None, "copied": context}


def test_get_current_context_is_exported_from_zonda():
    import zonda

    assert zonda.get_current_context is get_current_context
