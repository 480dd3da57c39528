"""The CeleryExecutor against the real Redis and RabbitMQ on this machine, with real `zonda celery worker`
subprocesses and a PostgreSQL metastore (no mocks).

Each test uses queues of its own (a random suffix), so tests of other sessions on the same brokers are never
disturbed; the queues are purged and deleted afterwards, and Redis is never flushed. A ledger line per task body
run (``tests/integration/scheduler_helpers.py``) is the proof of what ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

import scheduler_helpers as h

from zonda.executors.base import Workload
from zonda.executors.workload_schema import encode_workload

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BROKERS = {
    # A database number of its own (the shared server's db 0 is left to others); queues are unique anyway.
    "redis": "redis://127.0.0.1:6379/11",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}

DAG = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context, "start")
    record(context, "end")


with DAG("celery_dag", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=work, queue={q1!r})
    left = PythonOperator(task_id="left", python_callable=work, queue={q1!r})
    right = PythonOperator(task_id="right", python_callable=work, queue={q2!r})
    last = PythonOperator(task_id="last", python_callable=work, queue={q2!r})
    first >> [left, right] >> last
"""


class Env(h.LedgerSetup):
    """A PostgreSQL installation whose executor is the CeleryExecutor on ``broker``, with queues of its own."""

    def __init__(self, home: Path, url: str, monkeypatch: pytest.MonkeyPatch, broker: str) -> None:
        self.broker = broker
        suffix = uuid.uuid4().hex[:10]
        self.q1, self.q2 = f"zt-{suffix}-a", f"zt-{suffix}-b"
        options = {("celery", "broker_url"): broker, ("core", "executor"): "CeleryExecutor"}
        super().__init__(home, url, monkeypatch, options)
        self.dag("celery_dag.py", DAG.format(q1=self.q1, q2=self.q2))
        self.store()

    def executor(self) -> Any:
        from zonda_celery.executor import CeleryExecutor

        return CeleryExecutor(parallelism=8, settings=self.settings)

    def start_worker(self, started: list[h.SchedulerProcess], name: str, queues: str) -> h.SchedulerProcess:
        env = h.subprocess_env(self.home, self.url, self.options)
        argv = [sys.executable, "-m", "zonda", "celery", "worker", "-q", queues, "-c", "1", "--hostname", name]
        process = h.start_process(argv, env, self.home / f"{name}.log", cwd=self.home)
        started.append(process)
        h.wait_for(lambda: " ready." in process.output() or process.proc.poll() is not None, 60, what="worker ready")
        assert process.proc.poll() is None, process.output()
        return process

    def run_dag(self) -> int:
        from zonda.scheduler.scheduler import Scheduler

        run_id = self.trigger("celery_dag")
        scheduler = Scheduler(self.settings, executor=self.executor(), metastore=self.metastore)
        states = h.drive(scheduler, [run_id], 90)
        assert states == {run_id: "success"}, h.states_by_task(self.engine, run_id)
        return run_id

    def queued_workloads(self) -> dict[str, Workload]:
        """Trigger a run and let the real scheduler queue its first instance; the workloads by task id."""
        from zonda.scheduler.scheduler import Scheduler

        self.trigger("celery_dag")
        executor = h.KeepingExecutor(settings=self.settings)
        scheduler = Scheduler(self.settings, executor=executor, metastore=self.metastore)
        scheduler.start()
        try:
            h.wait_for(lambda: (scheduler.run_once(), executor.sent)[1], 20, what="an instance queued")
        finally:
            scheduler.shutdown()
        return {w.task_id: w for w in executor.sent}

    def workload_json(self, workload: Workload) -> str:
        return encode_workload(workload, self.settings).to_json()

    def app(self) -> Any:
        from zonda_celery.app import build_app

        return build_app(self.settings)

    def ended(self, task_id: str) -> list[h.Entry]:
        return [e for e in self.entries() if e.task_id == task_id and e.event == "end"]

    def row(self, task_id: str) -> Any:
        return next(r for r in h.task_instances(self.engine, dag_id="celery_dag") if r.task_id == task_id)

    def remove_queues(self) -> None:
        """Purge and delete this test's queues (only these: the shared brokers are left as they were)."""
        from kombu import Connection

        with Connection(self.broker, connect_timeout=5) as conn:
            channel = conn.default_channel
            for queue in (self.q1, self.q2):
                with contextlib.suppress(Exception):
                    channel.queue_purge(queue)
                with contextlib.suppress(Exception):
                    channel.queue_delete(queue)


@pytest.fixture(params=sorted(BROKERS))
def env(request: pytest.FixtureRequest, zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    with Env(zonda_home, postgres_url, monkeypatch, BROKERS[request.param]) as setup:
        try:
            yield setup
        finally:
            setup.remove_queues()


@pytest.fixture
def workers() -> Iterator[list[h.SchedulerProcess]]:
    with h.scheduler_processes() as started:
        yield started


def test_a_dag_runs_to_success_through_celery_workers(env: Env, workers: list) -> None:
    env.start_worker(workers, "w-both", f"{env.q1},{env.q2}")
    run_id = env.run_dag()
    entries = env.entries()
    assert sorted(e.task_id for e in entries if e.event == "end") == ["first", "last", "left", "right"]
    assert not h.duplicates(entries, "end")
    assert all(r.try_number == 1 and r.state == "success" for r in h.task_instances(env.engine, run_id))


def test_queues_route_tasks_to_the_worker_listening_on_them(env: Env, workers: list) -> None:
    one = env.start_worker(workers, "w-one", env.q1)
    two = env.start_worker(workers, "w-two", env.q2)
    env.run_dag()
    for process, mine, theirs in (
        (one, ("first", "left"), ("right", "last")),
        (two, ("right", "last"), ("first", "left")),
    ):
        log = process.output()
        for task_id in mine:
            assert f"Executing celery_dag.{task_id} " in log, log
        for task_id in theirs:
            assert f"Executing celery_dag.{task_id} " not in log, log


def test_a_message_delivered_twice_runs_once(env: Env, workers: list) -> None:
    workload = env.queued_workloads()["first"]
    text = env.workload_json(workload)
    app = env.app()
    for _ in range(2):
        app.send_task("zonda.execute_workload", args=[text], queue=env.q1)
    worker = env.start_worker(workers, "w-twice", env.q1)
    h.wait_for(lambda: worker.output().count("Executing celery_dag.first ") == 2, 60, what="both deliveries taken")
    h.wait_for(lambda: "not claimed" in worker.output(), 30, what="the second delivery refused")
    assert len(env.ended("first")) == 1
    row = env.row("first")
    assert (row.state, row.try_number) == ("success", 1)


def test_pickle_malformed_and_invalid_messages_are_rejected_and_nothing_runs(env: Env, workers: list) -> None:
    from kombu import Connection, Exchange, Producer

    valid = env.workload_json(env.queued_workloads()["first"])
    invalid_dag_file = valid.replace('"dag_file":"celery_dag.py"', '"dag_file":"../../etc/evil.py"')
    unknown_field = valid.replace('"kind":', '"command":"rm -rf /","kind":')
    # Valid in form, but the task does not exist: the worker finds no instance to claim, and nothing runs.
    ghost_task = valid.replace('"task_id":"first"', '"task_id":"ghost"')
    assert invalid_dag_file != valid and unknown_field != valid and ghost_task != valid
    app = env.app()
    for body in ("{not json", invalid_dag_file, unknown_field, 42, ghost_task):
        app.send_task("zonda.execute_workload", args=[body], queue=env.q1)
    with Connection(env.broker, connect_timeout=5) as conn:
        producer = Producer(conn.default_channel, exchange=Exchange(""))
        headers = {"lang": "py", "task": "zonda.execute_workload", "id": str(uuid.uuid4()), "argsrepr": "pickle"}
        producer.publish(((valid,), {}, {}), routing_key=env.q1, serializer="pickle", headers=headers, declare=[])
    worker = env.start_worker(workers, "w-reject", env.q1)
    h.wait_for(lambda: worker.output().count("rejected a message") >= 4, 60, what="the four bad workloads rejected")
    h.wait_for(lambda: "disallowed" in worker.output().lower(), 30, what="the pickle message refused")
    h.wait_for(lambda: "not claimed" in worker.output(), 30, what="the workload of a task that does not exist refused")
    output = worker.output()
    assert "'..'" in output and "'command' is not a field" in output and "not valid JSON" in output
    assert "celery_dag.ghost" in output and "does not exist in the metastore" in output
    assert "Executing celery_dag.first" not in output
    assert env.entries() == []
    assert env.row("first").state == "queued"
    # The worker is still serving: the valid workload, sent now, runs.
    app.send_task("zonda.execute_workload", args=[valid], queue=env.q1)
    h.wait_for(lambda: env.ended("first"), 60, what="the valid workload run")


def test_sigterm_is_a_warm_shutdown(env: Env, workers: list) -> None:
    worker = env.start_worker(workers, "w-term", env.q1)
    os.kill(worker.pid, signal.SIGTERM)
    try:
        assert worker.proc.wait(60) == 0, worker.output()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop on SIGTERM: {worker.output()}")
    assert "warm shutdown" in worker.output().lower()
