"""What the scheduler does with work it handed to an executor that outlives it (Celery's broker): an instance
queued too long without a claim is queued again (``task_queued_timeout``), and a restarted scheduler adopts what
its predecessor queued instead of queueing it twice. On SQLite, with executors that keep what they are given and
run nothing (a broker that lost a message, or one that holds it), so the scheduler's side is seen alone; the
Celery tests run the same paths against real brokers and workers."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.scheduler.stuck_queued import StuckQueued

DAG = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator

with DAG("held", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="only", python_callable=lambda: None)
"""


class AdoptingExecutor(h.KeepingExecutor):
    """Keeps what it is given, and takes over what a gone scheduler of its kind queued (as Celery does)."""

    name = "AdoptingExecutor"

    def adopt(self, workloads: list[Any]) -> list[Any]:
        for workload in workloads:
            self.running[workload.key] = workload
        self.adopted = list(workloads)
        return list(workloads)


@pytest.fixture
def env(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    options = {("scheduler", "task_queued_timeout"): 0.3, ("scheduler", "task_heartbeat_timeout"): 1.0}
    with h.LedgerSetup(zonda_home, None, monkeypatch, options) as setup:
        setup.dag("held.py", DAG)
        setup.store()
        yield setup


def scheduler(env: Any, executor: Any) -> Any:
    from zonda.scheduler.scheduler import Scheduler

    return Scheduler(env.settings, executor=executor, metastore=env.metastore)


def the_row(env: Any) -> Any:
    (row,) = h.task_instances(env.engine, dag_id="held")
    return row


def test_an_instance_queued_longer_than_task_queued_timeout_is_sent_again(env: Any) -> None:
    env.trigger("held")
    executor = h.KeepingExecutor(settings=env.settings)
    sched = scheduler(env, executor)
    sched.start()
    try:
        h.wait_for(lambda: (sched.run_once(), len(executor.sent) >= 2)[1], 20, what="the workload sent again")
    finally:
        sched.shutdown()
    first, second = executor.sent[:2]
    # The same try: nothing ran, so none is used up; a late copy of the first would lose the claim.
    assert (first.ti_id, first.try_number) == (second.ti_id, second.try_number) == (the_row(env).id, 1)
    row = the_row(env)
    assert (row.state, row.try_number) == ("queued", 0)


def test_each_further_wait_is_twice_as_long() -> None:
    stuck = StuckQueued(10.0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert not stuck.overdue(1, now - timedelta(seconds=9), now)
    assert stuck.overdue(1, now - timedelta(seconds=10), now)
    stuck.requeued(1)
    assert not stuck.overdue(1, now - timedelta(seconds=19), now)
    assert stuck.overdue(1, now - timedelta(seconds=20), now)
    for _ in range(20):
        stuck.requeued(1)
    # Bounded: the wait stops doubling.
    assert stuck.overdue(1, now - timedelta(seconds=10 * 2**StuckQueued.MAX_DOUBLINGS), now)
    stuck.claimed(1)
    assert stuck.overdue(1, now - timedelta(seconds=10), now)


def queue_and_stop(env: Any, executor: Any) -> int:
    """A scheduler queues the instance with ``executor`` and stops; returns its job id."""
    sched = scheduler(env, executor)
    sched.start()
    try:
        h.wait_for(lambda: (sched.run_once(), executor.sent)[1], 20, what="the instance queued")
    finally:
        sched.shutdown()
    return sched.job_id


def test_a_restarted_scheduler_adopts_what_its_predecessor_queued(env: Any) -> None:
    env.trigger("held")
    first_job = queue_and_stop(env, AdoptingExecutor(settings=env.settings))
    assert the_row(env).queued_by_job_id == first_job
    executor = AdoptingExecutor(settings=env.settings)
    sched = scheduler(env, executor)
    sched.start()
    try:
        for _ in range(5):
            sched.run_once()
        row = the_row(env)
        assert (row.state, row.queued_by_job_id) == ("queued", sched.job_id)
        assert [w.ti_id for w in executor.adopted] == [row.id] and executor.adopted[0].try_number == 1
        assert executor.sent == []  # nothing sent twice
        assert list(executor.running.values()) == executor.adopted  # its end is reported by this executor
    finally:
        sched.shutdown()


def test_work_an_executor_cannot_adopt_is_queued_again(env: Any) -> None:
    env.trigger("held")
    queue_and_stop(env, h.KeepingExecutor(settings=env.settings))  # a LocalExecutor's queue dies with it
    executor = h.KeepingExecutor(settings=env.settings)
    sched = scheduler(env, executor)
    sched.start()
    try:
        h.wait_for(lambda: (sched.run_once(), executor.sent)[1], 20, what="the instance queued again")
        assert the_row(env).queued_by_job_id == sched.job_id
    finally:
        sched.shutdown()
