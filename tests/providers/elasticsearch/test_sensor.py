"""ElasticsearchQuerySensor and ElasticsearchQueryTrigger against the real noida-db server: poking, deferring in
process, and deferring through the real triggerer service with the task run by a worker."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from zonda import DAG, serde
from zonda.exceptions import ZondaSensorTimeout, ZondaSkipException
from zonda.testing import run_dag
from zonda.triggers.base import trigger_from_row
from zonda_elasticsearch.hooks import ElasticsearchHook
from zonda_elasticsearch.sensors import ElasticsearchQuerySensor
from zonda_elasticsearch.triggers import ElasticsearchQueryTrigger

pytestmark = pytest.mark.elasticsearch

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def later(es_conn: str) -> Iterator[Any]:
    """``later(seconds, index, docs)``: index ``docs`` from another thread after a while (data arriving)."""
    threads: list[threading.Thread] = []

    def schedule(seconds: float, index: str, docs: list[dict[str, Any]]) -> None:
        def work() -> None:
            time.sleep(seconds)
            ElasticsearchHook(es_conn).bulk_index(index, docs, refresh=True)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        threads.append(thread)

    yield schedule
    for thread in threads:
        thread.join(10)


def test_sensor_waits_until_enough_documents_match(es_conn: str, es_index: str, later) -> None:
    hook = ElasticsearchHook(es_conn)
    hook.bulk_index(es_index, [{"status": "done"}, {"status": "queued"}], refresh=True)
    later(0.5, es_index, [{"status": "done"} for _ in range(3)])
    sensor = ElasticsearchQuerySensor(
        task_id="wait", index=es_index, query="status:done", min_count=4, poke_interval=0.1, timeout=10
    )
    started = time.monotonic()
    assert sensor.execute({}) == {"count": 4}
    assert 0.4 < time.monotonic() - started < 5
    assert sensor.poke({}).is_done and sensor.poke({}).xcom_value == {"count": 4}


def test_a_missing_index_counts_zero_until_the_timeout(es_conn: str, es_index: str) -> None:
    sensor = ElasticsearchQuerySensor(task_id="wait", index=es_index, poke_interval=0.05, timeout=0.3)
    assert sensor.poke({}).is_done is False
    with pytest.raises(ZondaSensorTimeout, match="timed out"):
        sensor.execute({})
    soft = ElasticsearchQuerySensor(task_id="soft", index=es_index, poke_interval=0.05, timeout=0.2, soft_fail=True)
    with pytest.raises(ZondaSkipException):
        soft.execute({})
    assert ElasticsearchQuerySensor(task_id="none", index=es_index, min_count=0).poke({}).is_done


def test_trigger_round_trips_through_json_and_fires_when_documents_arrive(es_conn: str, es_index: str, later) -> None:
    trigger = ElasticsearchQueryTrigger(index=es_index, query="kind:order", min_count=2, poke_interval=0.1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "zonda_elasticsearch.triggers.ElasticsearchQueryTrigger"
    assert kwargs["query"] == {"query_string": {"query": "kind:order"}}
    rebuilt = trigger_from_row(classpath, serde.dumps(kwargs))
    later(0.4, es_index, [{"kind": "order"}, {"kind": "order"}, {"kind": "refund"}])

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event.payload

    started = time.monotonic()
    payload = asyncio.run(asyncio.wait_for(first_event(), 10))
    assert payload == {"status": "success", "count": 2}
    assert time.monotonic() - started >= 0.3
    assert json.loads(json.dumps(payload)) == payload


def test_trigger_reports_a_bad_query_as_an_error_event(es_conn: str, es_index: str) -> None:
    ElasticsearchHook(es_conn).bulk_index(es_index, [{"n": 1}], refresh=True)
    trigger = ElasticsearchQueryTrigger(index=es_index, query={"no_such_query": {}}, poke_interval=0.1)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), 10))
    assert payload["status"] == "error" and "BadRequestError" in payload["message"]


def test_deferrable_sensor_in_a_dag_run(es_conn: str, es_index: str, later, zonda_settings) -> None:
    """No triggerer in ``run_dag``: the trigger is rebuilt from its JSON and runs in process."""
    later(0.5, es_index, [{"level": "error"} for _ in range(3)])
    with DAG("es_wait", start_date=START, schedule=None) as dag:
        ElasticsearchQuerySensor(
            task_id="wait",
            index=es_index,
            query={"term": {"level.keyword": "error"}},
            min_count="{{ params.n }}",
            poke_interval=0.1,
            timeout=20,
            deferrable=True,
            params={"n": 3},
        )
    result = run_dag(dag, START)
    assert result.states() == {"wait": "success"}
    assert result.ti("wait").xcom_pull(task_ids="wait") == {"count": 3}
    log = next((zonda_settings.log_folder / "dag_id=es_wait").rglob("attempt=1.log")).read_text()
    assert "Deferred on <ElasticsearchQueryTrigger" in log and "3 document(s) of" in log


DAG_FILE = """
from datetime import datetime

from zonda import DAG
from zonda_elasticsearch.sensors import ElasticsearchQuerySensor

with DAG("es_deferring", start_date=datetime(2024, 1, 1), schedule=None):
    ElasticsearchQuerySensor(task_id="wait", index=INDEX, query="kind:ready", poke_interval=0.1, deferrable=True)
"""


def test_deferrable_sensor_through_the_triggerer(
    es_conn: str, es_index: str, zonda_home, zonda_settings, zonda_metastore
) -> None:
    """A worker runs the task, which defers into the metastore; the triggerer service runs the trigger with the
    async client; once documents arrive the task is scheduled again and a worker finishes the same try."""
    from zonda.executors.base import Workload
    from zonda.executors.workload import WorkloadRunner
    from zonda.metastore import tables as t
    from zonda.runner.store import DagRunInfo, MetastoreRunStore
    from zonda.triggerer import Triggerer

    dag_file = zonda_home / "dags" / "es_deferring.py"
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    dag_file.write_text(f"INDEX = {es_index!r}\n" + textwrap.dedent(DAG_FILE))
    store = MetastoreRunStore(zonda_metastore)
    now = datetime.now(UTC)
    run = DagRunInfo("es_deferring", "manual__1", now, now, now, state="running", start_date=now)
    store.create_dag_run(run)
    store.create_task_instances(run, [{"task_id": "wait", "map_index": -1, "try_number": 0, "max_tries": 0}])
    store.close()
    runner = WorkloadRunner(home=str(zonda_home))
    engine = zonda_metastore.engine

    def row() -> Any:
        with engine.connect() as conn:
            return conn.execute(select(t.task_instance).where(t.task_instance.c.dag_run_id == run.id)).one()

    def attempt() -> Any:
        current = row()
        with engine.begin() as conn:
            conn.execute(
                update(t.task_instance)
                .where(t.task_instance.c.id == current.id)
                .values(state="queued", queued_dttm=datetime.now(UTC))
            )
        runner.run(
            Workload(
                ti_id=current.id,
                dag_id="es_deferring",
                run_id=run.run_id,
                task_id="wait",
                map_index=-1,
                # As the scheduler numbers it: a resumed deferral continues its try.
                try_number=current.try_number + (0 if current.next_method else 1),
                fileloc=str(dag_file),
            )
        )
        return row()

    deferred = attempt()
    assert (deferred.state, deferred.next_method) == ("deferred", "execute_complete")
    with engine.connect() as conn:
        [trigger] = conn.execute(select(t.trigger)).all()
    assert trigger.classpath == "zonda_elasticsearch.triggers.ElasticsearchQueryTrigger"
    assert json.loads(trigger.kwargs)["index"] == es_index

    triggerer = Triggerer(zonda_settings, metastore=zonda_metastore, capacity=10)
    try:
        for _ in range(5):  # nothing matches yet: the trigger keeps waiting
            triggerer.run_once(timeout=0.1)
        assert row().state == "deferred"
        ElasticsearchHook(es_conn).bulk_index(es_index, [{"kind": "ready"}], refresh=True)
        deadline = time.monotonic() + 15
        while row().state != "scheduled":
            assert time.monotonic() < deadline, "the trigger did not fire"
            triggerer.run_once(timeout=0.2)
    finally:
        triggerer.shutdown()
    assert serde.loads(row().next_kwargs)["event"] == {"status": "success", "count": 1}
    done = attempt()
    assert (done.state, done.try_number) == ("success", 1)
    with engine.connect() as conn:
        value = conn.execute(select(t.xcom.c.value).where(t.xcom.c.task_id == "wait")).scalar_one()
    assert serde.loads(value) == {"count": 1}
