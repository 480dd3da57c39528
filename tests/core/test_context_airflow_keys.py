"""The task context against Airflow 3.3's: the same keys, the same values, lazily where a query is needed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from zonda import DAG, task
from zonda.context import CONTEXT_KEYS, build_context
from zonda.operators import BashOperator, PythonOperator
from zonda.testing import run_dag

# Airflow 3.3's context keys. Documented at https://airflow.apache.org/docs/apache-airflow/stable/templates-ref.html
# (section "Variables"); the complete list is the ``Context`` TypedDict of the Task SDK shipped with Airflow 3.3.2
# (apache-airflow-task-sdk 1.3.2, ``airflow/sdk/definitions/context.py``), checked against the installed copy.
AIRFLOW_3_3_CONTEXT_KEYS = {
    "asset_state_store",
    "conn",
    "dag",
    "dag_run",
    "data_interval_end",
    "data_interval_start",
    "ds",
    "ds_nodash",
    "exception",
    "expanded_ti_count",
    "inlet_events",
    "inlets",
    "logical_date",
    "macros",
    "map_index_template",
    "outlet_events",
    "outlets",
    "params",
    "partition_date",
    "partition_key",
    "prev_data_interval_end_success",
    "prev_data_interval_start_success",
    "prev_end_date_success",
    "prev_start_date_success",
    "reason",
    "run_id",
    "task",
    "task_instance",
    "task_instance_key_str",
    "task_reschedule_count",
    "task_state_store",
    "templates_dict",
    "test_mode",
    "ti",
    "triggering_asset_events",
    "try_number",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "var",
}
#: Keys Airflow sets only in some contexts, and Zonda likewise: ``templates_dict`` (PythonOperator), ``exception``
#: (failure callbacks), ``reason`` (DAG callbacks).
ONLY_SOMETIMES = {"templates_dict", "exception", "reason"}
#: Airflow 3.3's state stores (a per-task key-value store kept across tries, and the asset one, set only for tasks
#: with asset inlets or outlets): Zonda has neither yet.
NOT_PROVIDED = {"task_state_store", "asset_state_store"}
#: Zonda's additions: ``conf`` (the settings, Airflow 2's key) and ``execution_date`` (Airflow 2's logical date).
ZONDA_ONLY = {"conf", "execution_date"}

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_the_context_has_airflow_3_3s_keys(zonda_home: Path) -> None:
    run = SimpleNamespace(
        run_id="r", logical_date=START, data_interval_start=START, data_interval_end=START, conf={}, dag_id="d"
    )
    context = build_context(dag=None, task=None, dag_run=run, ti=None, params={})
    keys = set(context)
    assert keys == set(CONTEXT_KEYS)
    assert AIRFLOW_3_3_CONTEXT_KEYS - ONLY_SOMETIMES - NOT_PROVIDED - keys == set()
    assert keys - AIRFLOW_3_3_CONTEXT_KEYS == ZONDA_ONLY


class _CountingStore:
    """Counts the context's queries (the run store stand-in only answers them: a real one is used below)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def previous_successful_run(self, run: Any) -> Any:
        self.calls.append("previous")
        return SimpleNamespace(data_interval_start=START, data_interval_end=START, start_date=START, end_date=START)

    def mapped_instance_count(self, run: Any, task_id: str) -> int:
        self.calls.append("count")
        return 3


def test_values_that_need_a_query_are_read_once_and_only_when_used() -> None:
    store = _CountingStore()
    ti = SimpleNamespace(store=store, map_index=1, dag_run=None, task_id="t", try_number=1)
    run = SimpleNamespace(run_id="r", logical_date=START, data_interval_start=START, data_interval_end=START)
    context = build_context(dag=None, task=None, dag_run=run, ti=ti, params={})
    assert store.calls == []
    kept = context.copy()  # what PythonOperator hands its callable: still nothing read
    assert store.calls == [] and kept["try_number"] == 1 and store.calls == []
    assert context["prev_start_date_success"] == START
    assert context["prev_end_date_success"] == START
    assert context.get("prev_data_interval_start_success") == START
    assert store.calls == ["previous"]  # the four prev_* share one query
    copied = dict(context)  # a copy reads the rest (a **kwargs callable gets real values, never placeholders)
    assert copied["expanded_ti_count"] == 3
    assert store.calls == ["previous", "count"]
    assert context["expanded_ti_count"] == 3 and store.calls == ["previous", "count"]


def test_a_real_run_sees_airflows_values(zonda_home: Path, zonda_metastore: Any, monkeypatch, caplog) -> None:
    """Two runs through the metastore: the second sees the first as its previous success."""
    monkeypatch.setenv("ZONDA_CONN_WAREHOUSE", "postgres://loader:s3cret-pass-word@db.internal:5433/dw")
    seen: list[dict[str, Any]] = []

    def look(**context: Any) -> None:
        seen.append(
            {
                key: context[key]
                for key in (
                    "task_instance_key_str",
                    "prev_start_date_success",
                    "prev_data_interval_start_success",
                    "try_number",
                    "templates_dict",
                    "inlets",
                    "outlets",
                    "triggering_asset_events",
                    "expanded_ti_count",
                    "test_mode",
                )
            }
        )
        seen[-1]["host"] = context["conn"].warehouse.host
        seen[-1]["missing"] = context["conn"].get("nope", "default")
        logging.getLogger("zonda.task").info("password is %s", context["conn"].warehouse.password)

    @task
    def mapped(x: int, expanded_ti_count: int | None = None) -> int | None:
        return expanded_ti_count

    with DAG("ctx", start_date=START, schedule=None) as dag:
        PythonOperator(
            task_id="look",
            python_callable=look,
            templates_dict={"host": "{{ conn.warehouse.host }}:{{ conn.warehouse.port }}"},
            inlets=["s3://in"],
            outlets=["s3://out"],
        )
        BashOperator(task_id="echo", bash_command="echo {{ task_instance_key_str }} {{ ts_nodash_with_tz }}")
        mapped.expand(x=[1, 2, 3])

    caplog.set_level(logging.INFO)
    first = run_dag(dag, "2024-01-01", metastore=zonda_metastore)
    assert first.succeeded
    second = run_dag(dag, "2024-01-02", metastore=zonda_metastore)
    assert second.succeeded
    one, two = seen
    assert one["task_instance_key_str"] == "ctx__look__20240101"
    assert two["task_instance_key_str"] == "ctx__look__20240102"
    assert one["prev_start_date_success"] is None and one["prev_data_interval_start_success"] is None
    assert two["prev_start_date_success"] == first.run.start_date
    assert two["prev_data_interval_start_success"] == first.run.data_interval_start
    assert one["try_number"] == 1
    assert one["templates_dict"] == {"host": "db.internal:5433"}
    assert one["inlets"] == ["s3://in"] and one["outlets"] == ["s3://out"]
    assert one["triggering_asset_events"] == {}
    assert one["expanded_ti_count"] is None  # not a mapped task
    assert one["host"] == "db.internal" and one["missing"] == "default"
    assert [second.ti("mapped", i).xcom_pull(task_ids="mapped", map_indexes=i) for i in range(3)] == [3, 3, 3]
    log_text = Path(second.ti("look").log_path).read_text()
    assert "s3cret-pass-word" not in log_text and "password is ***" in log_text
    assert "ctx__echo__20240102 20240102T000000+0000" in Path(second.ti("echo").log_path).read_text()


def test_connection_fields_are_data_never_templates(zonda_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA_CONN_TRICKY", '{"conn_type": "http", "host": "{{ 7 * 7 }}"}')
    out: list[Any] = []

    with DAG("ctx_safe", start_date=START, schedule=None) as dag:
        PythonOperator(
            task_id="t",
            python_callable=lambda templates_dict: out.append(templates_dict["h"]),
            templates_dict={"h": "{{ conn.tricky.host }}"},
        )
    assert run_dag(dag, "2024-01-01").succeeded
    assert out == ["{{ 7 * 7 }}"]


@pytest.mark.parametrize("key", sorted(NOT_PROVIDED))
def test_keys_not_provided_fail_with_a_clear_error(key: str) -> None:
    run = SimpleNamespace(run_id="r", logical_date=START, data_interval_start=START, data_interval_end=START)
    context = build_context(dag=None, task=None, dag_run=run, ti=None, params={})
    with pytest.raises(KeyError, match="not in the task context"):
        context[key]
