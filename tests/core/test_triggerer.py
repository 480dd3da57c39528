"""The triggerer service end to end, without a scheduler: real attempts through ``WorkloadRunner`` defer into
the metastore, the triggerer fires their triggers, and the resumed attempt continues the same try."""

from __future__ import annotations

import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from zonda import serde
from zonda.executors.base import Workload
from zonda.executors.workload import WorkloadRunner
from zonda.metastore import tables as t
from zonda.runner.store import DagRunInfo, MetastoreRunStore
from zonda.triggerer import Triggerer
from zonda.triggers import BaseTrigger, DateTimeTrigger, TriggerEvent, serialize_trigger

DAG_FILE = """
from datetime import datetime, timedelta
import os

from zonda import DAG
from zonda.operators.base import BaseOperator
from zonda.sensors import FileSensor, PythonSensor
from zonda.triggers import DateTimeTrigger


class Deferring(BaseOperator):
    def execute(self, context):
        from zonda.timezone import utcnow

        self.defer(
            trigger=DateTimeTrigger(utcnow() + timedelta(seconds=0.2)),
            method_name="resume",
            kwargs={"note": "hi"},
            timeout=timedelta(minutes=5),
        )

    def resume(self, context, event=None, note=None):
        return {"event": event.isoformat(), "note": note, "try": context["ti"].try_number}


with DAG("deferring", start_date=datetime(2024, 1, 1), schedule=None):
    Deferring(task_id="wait")
    Deferring(task_id="flaky", retries=1, retry_delay=0)
    Deferring(task_id="plain")
    FileSensor(task_id="file", filepath=FLAG + ".file", poke_interval=0.05, deferrable=True)
    PythonSensor(
        task_id="poll",
        python_callable=lambda: os.path.exists(FLAG + ".poll"),
        poke_interval=0.05,
        deferrable=True,
    )
"""


class ExplodingTrigger(BaseTrigger):
    def serialize(self):
        return f"{type(self).__module__}.ExplodingTrigger", {}

    async def run(self):
        raise ValueError("kaboom from the trigger")
        yield TriggerEvent(None)  # pragma: no cover


class Env:
    """A DAG file, one run with its task instances, and helpers to run attempts and read rows."""

    def __init__(self, home: Path, settings: Any, metastore: Any) -> None:
        self.home, self.settings, self.metastore = home, settings, metastore
        self.flag = home / "flag"
        self.dag_file = home / "dags" / "deferring.py"
        self.dag_file.parent.mkdir(parents=True, exist_ok=True)
        self.dag_file.write_text(f"FLAG = {str(self.flag)!r}\n" + textwrap.dedent(DAG_FILE))
        store = MetastoreRunStore(metastore)
        now = datetime.now(UTC)
        self.run = DagRunInfo("deferring", "manual__1", now, now, now, state="running", start_date=now)
        store.create_dag_run(self.run)
        rows = [
            {"task_id": tid, "map_index": -1, "try_number": 0, "max_tries": 1 if tid == "flaky" else 0}
            for tid in ("wait", "flaky", "plain", "file", "poll")
        ]
        store.create_task_instances(self.run, rows)
        store.close()
        self.runner = WorkloadRunner(home=str(home))

    def row(self, task_id: str) -> Any:
        with self.metastore.engine.connect() as conn:
            return conn.execute(
                select(t.task_instance).where(
                    t.task_instance.c.dag_run_id == self.run.id, t.task_instance.c.task_id == task_id
                )
            ).one()

    def set(self, task_id: str, **values: Any) -> None:
        with self.metastore.engine.begin() as conn:
            conn.execute(
                update(t.task_instance)
                .where(t.task_instance.c.dag_run_id == self.run.id, t.task_instance.c.task_id == task_id)
                .values(**values)
            )

    def attempt(self, task_id: str) -> Any:
        """What the scheduler and an executor would do: queue the row, run the workload."""
        row = self.row(task_id)
        self.set(task_id, state="queued", queued_dttm=datetime.now(UTC))
        self.runner.run(
            Workload(
                ti_id=row.id,
                dag_id="deferring",
                run_id=self.run.run_id,
                task_id=task_id,
                map_index=-1,
                # As the scheduler numbers it: a resumed deferral continues its try.
                try_number=row.try_number + (0 if row.next_method else 1),
                fileloc=str(self.dag_file),
            )
        )
        return self.row(task_id)

    def triggers(self) -> list[Any]:
        with self.metastore.engine.connect() as conn:
            return conn.execute(select(t.trigger)).all()

    def log(self, task_id: str, attempt: int) -> str:
        folder = self.settings.log_folder / "dag_id=deferring" / f"run_id={self.run.run_id}" / f"task_id={task_id}"
        return (folder / f"attempt={attempt}.log").read_text()

    def add_trigger(self, trigger: BaseTrigger, **values: Any) -> int:
        classpath, kwargs = serialize_trigger(trigger)
        with self.metastore.engine.begin() as conn:
            return conn.execute(
                insert(t.trigger).values(classpath=classpath, kwargs=kwargs, created_date=datetime.now(UTC), **values)
            ).inserted_primary_key[0]


@pytest.fixture
def env(zonda_home, zonda_settings, zonda_metastore) -> Env:
    return Env(zonda_home, zonda_settings, zonda_metastore)


@pytest.fixture
def triggerer(zonda_settings, zonda_metastore):
    triggerer = Triggerer(zonda_settings, metastore=zonda_metastore, capacity=100)
    yield triggerer
    triggerer.shutdown()


def _until(triggerer: Triggerer, condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        triggerer.run_once(timeout=0.2)


def test_deferred_task_resumes_in_the_same_try(env: Env, triggerer: Triggerer) -> None:
    row = env.attempt("wait")
    assert (row.state, row.try_number, row.next_method) == ("deferred", 1, "resume")
    assert serde.loads(row.next_kwargs) == {"note": "hi"}
    assert row.trigger_id is not None and row.trigger_timeout > datetime.now(UTC) + timedelta(minutes=4)
    [trigger] = env.triggers()
    assert trigger.classpath == "zonda.triggers.temporal.DateTimeTrigger" and trigger.triggerer_id is None
    assert "Pausing task as DEFERRED" in env.log("wait", 1)

    _until(triggerer, lambda: env.row("wait").state == "scheduled")
    row = env.row("wait")
    kwargs = serde.loads(row.next_kwargs)
    assert kwargs["note"] == "hi" and isinstance(kwargs["event"], datetime)
    assert row.trigger_id is None and row.try_number == 1 and row.next_method == "resume"
    assert env.triggers() == []
    assert triggerer.running_triggers == 0  # fired triggers are dropped

    row = env.attempt("wait")  # the scheduler would queue it as "try 2"; the worker keeps try 1
    assert (row.state, row.try_number, row.next_method, row.next_kwargs) == ("success", 1, None, None)
    with env.metastore.engine.connect() as conn:
        value = serde.loads(conn.execute(select(t.xcom.c.value).where(t.xcom.c.task_id == "wait")).scalar_one())
    assert value["note"] == "hi" and value["try"] == 1
    log = env.log("wait", 1)  # one try, one log: the resumed part is appended
    assert "Starting attempt 1" in log and "Resuming attempt 1 of 1" in log and "Attempt ended: success" in log


def test_raising_trigger_fails_the_task_with_the_traceback(env: Env, triggerer: Triggerer) -> None:
    for task_id in ("flaky", "plain"):
        trigger_id = env.add_trigger(ExplodingTrigger())
        env.set(task_id, state="deferred", try_number=1, trigger_id=trigger_id, next_method="resume", next_kwargs="{}")
    _until(triggerer, lambda: env.row("flaky").state == "scheduled" and env.row("plain").state == "scheduled")
    row = env.row("plain")
    assert row.next_method == "__trigger_error__"
    assert "ValueError: kaboom from the trigger" in serde.loads(row.next_kwargs)["error"]
    assert env.triggers() == []

    assert env.attempt("plain").state == "failed"
    log = env.log("plain", 1)
    assert "Traceback" in log and "ValueError: kaboom from the trigger" in log
    flaky = env.attempt("flaky")
    assert (flaky.state, flaky.try_number) == ("up_for_retry", 1)  # retries apply as for any failure
    # The retry starts over at execute(): it defers again.
    env.set("flaky", state="scheduled")
    assert env.attempt("flaky").state == "deferred" and env.row("flaky").try_number == 2


def test_trigger_timeout_fails_the_task(env: Env, triggerer: Triggerer) -> None:
    trigger_id = env.add_trigger(DateTimeTrigger(datetime.now(UTC) + timedelta(hours=1)))
    env.set(
        "plain",
        state="deferred",
        try_number=1,
        trigger_id=trigger_id,
        trigger_timeout=datetime.now(UTC) - timedelta(seconds=1),
        next_method="resume",
        next_kwargs="{}",
    )
    report = triggerer.run_once()
    assert report.timed_out == 1
    row = env.row("plain")
    assert (row.state, row.next_method, row.trigger_id) == ("scheduled", "__trigger_timeout__", None)
    assert env.triggers() == []  # nobody waits on it any more
    row = env.attempt("plain")
    assert row.state == "failed"
    assert "did not fire before its timeout" in env.log("plain", 1)


def test_deferrable_sensors_hold_no_slot_and_resume(env: Env, triggerer: Triggerer) -> None:
    file_row = env.attempt("file")
    poll_row = env.attempt("poll")
    assert file_row.state == poll_row.state == "deferred"
    assert {tr.classpath for tr in env.triggers()} == {
        "zonda.triggers.file.FileTrigger",
        "zonda.triggers.temporal.DateTimeTrigger",
    }
    poll_kwargs = serde.loads(poll_row.next_kwargs)
    assert poll_kwargs["poke_count"] == 1 and isinstance(poll_kwargs["started_at"], datetime)

    # The PythonSensor's wait between pokes fires; its condition still does not hold: it defers again.
    _until(triggerer, lambda: env.row("poll").state == "scheduled")
    row = env.attempt("poll")
    assert row.state == "deferred" and row.try_number == 1
    kwargs = serde.loads(row.next_kwargs)
    assert kwargs["poke_count"] == 2 and kwargs["started_at"] == poll_kwargs["started_at"]

    Path(str(env.flag) + ".file").write_text("x")
    Path(str(env.flag) + ".poll").write_text("x")
    _until(triggerer, lambda: env.row("file").state == "scheduled" and env.row("poll").state == "scheduled")
    assert serde.loads(env.row("file").next_kwargs)["event"] == str(env.flag) + ".file"
    assert env.attempt("file").state == "success"
    row = env.attempt("poll")
    assert (row.state, row.try_number) == ("success", 1)


def test_claims_orphans_cleans_unused_and_respects_ownership(env: Env, triggerer: Triggerer) -> None:
    engine = env.metastore.engine
    stale = datetime.now(UTC) - timedelta(minutes=10)
    with engine.begin() as conn:
        dead = conn.execute(
            insert(t.job).values(job_type="triggerer", state="running", start_date=stale, latest_heartbeat=stale)
        ).inserted_primary_key[0]
        alive = conn.execute(
            insert(t.job).values(
                job_type="triggerer", state="running", start_date=stale, latest_heartbeat=datetime.now(UTC)
            )
        ).inserted_primary_key[0]
    far = DateTimeTrigger(datetime.now(UTC) + timedelta(hours=1))
    orphan = env.add_trigger(far, triggerer_id=dead)
    others = env.add_trigger(far, triggerer_id=alive)
    unused = env.add_trigger(far)  # no task instance waits on it
    env.set("wait", state="deferred", try_number=1, trigger_id=orphan, next_method="resume", next_kwargs="{}")
    env.set("plain", state="deferred", try_number=1, trigger_id=others, next_method="resume", next_kwargs="{}")
    report = triggerer.run_once()
    by_id = {tr.id: tr for tr in env.triggers()}
    assert unused not in by_id
    assert by_id[orphan].triggerer_id == triggerer.job_id  # a dead triggerer's trigger is taken over
    assert by_id[others].triggerer_id == alive  # a live one's is left alone
    assert report.started == 1 and triggerer.running_triggers == 1

    # The task instance is cleared while deferred: its trigger is deleted and cancelled.
    env.set("wait", state=None, trigger_id=None)
    report = triggerer.run_once()
    assert report.cancelled == 1 and triggerer.running_triggers == 0
    assert orphan not in {tr.id for tr in env.triggers()}


def test_service_thread_wakes_tasks_and_stops_gracefully(env: Env, zonda_settings, zonda_metastore) -> None:
    triggerer = Triggerer(zonda_settings, metastore=zonda_metastore, poll_interval=0.1)
    stop = threading.Event()
    # Rows first: a running triggerer deletes triggers that no deferred task instance points at yet.
    moment = datetime.now(UTC) + timedelta(seconds=1.0)
    trigger_id = env.add_trigger(DateTimeTrigger(moment))
    env.set("plain", state="deferred", try_number=1, trigger_id=trigger_id, next_method="resume", next_kwargs="{}")
    far = env.add_trigger(DateTimeTrigger(datetime.now(UTC) + timedelta(hours=1)))
    env.set("wait", state="deferred", try_number=1, trigger_id=far, next_method="resume", next_kwargs="{}")
    thread = threading.Thread(target=triggerer.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while env.row("plain").state != "scheduled":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        woken = env.row("plain").updated_at
        assert (woken - moment).total_seconds() < 0.1
        job_id = triggerer.job_id
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    with zonda_metastore.engine.connect() as conn:
        job = conn.execute(select(t.job).where(t.job.c.id == job_id)).one()
        remaining = conn.execute(select(t.trigger)).all()
    assert job.job_type == "triggerer" and job.state == "success" and job.end_date is not None
    assert [(tr.id, tr.triggerer_id) for tr in remaining] == [(far, None)]  # handed back for another triggerer
