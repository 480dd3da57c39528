""" "Why isn't my task running?" (``zonda.operations.why`` and ``zonda tasks why``), on SQLite and PostgreSQL.

DAGs are stored by the real DAG processor; runs are created with ``trigger_dag`` and started by the real
scheduler's steps. Each blocker is checked twice: ``why`` names it, and the scheduler (its run-starting,
deciding and queueing steps, with an executor that is never started so nothing runs) indeed does not move the
instance; once the blocker is removed, ``why`` no longer names it and the same scheduler steps move the instance.
That ties every claim of ``why`` to what the scheduler does, not to a copy of its rules.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.exceptions import DagNotFound, NotFound, TaskNotFound
from zonda.operations import why as w

DAGS = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import PythonOperator


def work():
    return None


with DAG("why_basic", schedule=None, start_date=datetime(2024, 1, 1)):
    up = PythonOperator(task_id="up", python_callable=work)
    other = PythonOperator(task_id="other", python_callable=work)
    down = PythonOperator(task_id="down", python_callable=work, retries=2, retry_delay=timedelta(minutes=5))
    either = PythonOperator(task_id="either", python_callable=work, trigger_rule="one_success")
    [up, other] >> down
    [up, other] >> either

with DAG("why_pools", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="first", python_callable=work, pool="tiny")
    PythonOperator(task_id="second", python_callable=work, pool="tiny")
    PythonOperator(task_id="lost", python_callable=work, pool="nowhere")

with DAG("why_limits", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=2, max_active_runs=1):
    for name in ("a", "b", "c"):
        PythonOperator(task_id=name, python_callable=work)

with DAG("why_past", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="step", python_callable=work, depends_on_past=True)

with DAG("why_mapped", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator.partial(task_id="each", python_callable=work, pool="tiny").expand(op_args=[[1], [2], [3]])
"""


@dataclass
class Why:
    settings: Any
    metastore: Any
    scheduler_job: int | None = None

    @property
    def engine(self) -> Any:
        return self.metastore.engine

    def trigger(self, dag_id: str, run_id: str, logical_date: datetime | None = None) -> str:
        from zonda.operations.dag_runs import trigger

        return trigger(self.engine, dag_id, run_id=run_id, logical_date=logical_date).run_id

    def scheduler_pass(self) -> None:
        """The scheduler's own steps of one pass: start queued runs, decide every running run, queue what may
        run. Its executor is never started, so what it queues stays queued and nothing runs."""
        from zonda.executors.local import LocalExecutor
        from zonda.scheduler.scheduler import Scheduler

        scheduler = Scheduler(
            self.settings, executor=LocalExecutor(parallelism=16, settings=self.settings), metastore=self.metastore
        )
        scheduler._start_queued_runs()
        scheduler._decide(True)
        scheduler._queue()

    def state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        from zonda.operations.task_instances_read import get_task_instance

        return get_task_instance(self.engine, dag_id, task_id, run_id).state

    def run_state(self, dag_id: str, run_id: str) -> str:
        from zonda.operations.dag_runs import get_run

        return get_run(self.engine, dag_id, run_id).state

    def set_state(self, dag_id: str, run_id: str, task_id: str, state: str | None, **values: Any) -> None:
        """Test setup only: put an instance in the state a scenario needs."""
        from sqlalchemy import update

        from zonda.metastore import tables as t

        ti = t.task_instance
        if state == "running":
            now = datetime.now(UTC)
            values = {"start_date": now, "last_heartbeat_at": now, "try_number": 1, **values}
        with self.engine.begin() as conn:
            result = conn.execute(
                update(ti)
                .where(ti.c.dag_id == dag_id, ti.c.run_id == run_id, ti.c.task_id == task_id)
                .values(state=state, **values)
            )
            assert result.rowcount == 1

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        from sqlalchemy import update

        from zonda.metastore import tables as t

        with self.engine.begin() as conn:
            conn.execute(
                update(t.dag_run).where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.run_id == run_id).values(state=state)
            )

    def why(self, dag_id: str, task_id: str, run_id: str, map_index: int | None = None) -> w.WhyReport:
        return w.why(self.engine, self.settings, dag_id, task_id, run_id, map_index)

    def blocker(self, report: w.WhyReport, code: str) -> w.Blocker:
        found = [b for b in report.blockers if b.code == code]
        assert found, f"no {code} blocker in {report.blockers}"
        return found[0]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Why]:
    from zonda.operations.pools import set_pool
    from zonda.scheduler import jobs

    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    settings, metastore = h.configure(zonda_home, monkeypatch, url)
    try:
        h.write_dag(zonda_home, "why_dags.py", DAGS)
        h.store_dags(settings, metastore)
        set_pool(metastore.engine, "tiny", 1)
        env = Why(settings, metastore)
        # A scheduler's heartbeat, so "no scheduler" is only reported by the test about it.
        env.scheduler_job = jobs.start_job(metastore.engine, "scheduler")
        yield env
    finally:
        metastore.dispose()


def test_trigger_rule_names_the_upstream_tasks_it_waits_for(env: Why) -> None:
    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()  # starts the run, schedules and queues the roots
    env.set_state("why_basic", run, "up", "running")
    env.set_state("why_basic", run, "other", "success")

    report = env.why("why_basic", "down", run)
    blocker = env.blocker(report, w.TRIGGER_RULE)
    assert blocker.details == {"trigger_rule": "all_success", "upstream": {"up": "running"}}
    assert "all_success" in blocker.message and "up (running)" in blocker.message
    assert "other" not in blocker.message  # a finished upstream is not what it waits for
    assert report.codes == [w.TRIGGER_RULE]
    env.scheduler_pass()
    assert env.state("why_basic", run, "down") is None

    env.set_state("why_basic", run, "up", "success")
    report = env.why("why_basic", "down", run)
    assert report.codes == [] and any("schedules it at its next pass" in n for n in report.notes)
    env.scheduler_pass()
    assert env.state("why_basic", run, "down") == "queued"


def test_an_upstream_failure_says_the_task_will_not_run(env: Why) -> None:
    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    env.set_state("why_basic", run, "up", "failed")
    env.set_state("why_basic", run, "other", "running")

    down = env.why("why_basic", "down", run)
    assert env.blocker(down, w.WILL_NOT_RUN).details == {"decided": "upstream_failed"}
    # one_success is still waiting: a failure does not settle it while "other" runs.
    either = env.why("why_basic", "either", run)
    assert env.blocker(either, w.TRIGGER_RULE).details["upstream"] == {"other": "running"}
    env.scheduler_pass()
    assert env.state("why_basic", run, "down") == "upstream_failed"
    assert env.state("why_basic", run, "either") is None


def test_a_full_pool_names_its_slots(env: Why) -> None:
    from zonda.operations.pools import set_pool

    run = env.trigger("why_pools", "r1")
    env.scheduler_pass()  # queues one of the two "tiny" tasks: the pool has one slot
    states = {task: env.state("why_pools", run, task) for task in ("first", "second")}
    assert sorted(states.values(), key=str) == ["queued", "scheduled"]
    waiting = next(task for task, state in states.items() if state == "scheduled")

    report = env.why("why_pools", waiting, run)
    blocker = env.blocker(report, w.POOL_FULL)
    assert blocker.details == {"pool": "tiny", "used": 1, "slots": 1, "needs": 1}
    assert "pool 'tiny' is full: 1 of 1 slots" in blocker.message
    env.scheduler_pass()
    assert env.state("why_pools", run, waiting) == "scheduled"

    set_pool(env.engine, "tiny", 2)
    assert w.POOL_FULL not in env.why("why_pools", waiting, run).codes
    env.scheduler_pass()
    assert env.state("why_pools", run, waiting) == "queued"


def test_a_missing_pool_says_how_to_create_it(env: Why) -> None:
    from zonda.operations.pools import set_pool

    run = env.trigger("why_pools", "r1")
    env.scheduler_pass()
    blocker = env.blocker(env.why("why_pools", "lost", run), w.POOL_MISSING)
    assert "zonda pools set nowhere" in blocker.message
    env.scheduler_pass()
    assert env.state("why_pools", run, "lost") == "scheduled"

    set_pool(env.engine, "nowhere", 4)
    assert w.POOL_MISSING not in env.why("why_pools", "lost", run).codes
    env.scheduler_pass()
    assert env.state("why_pools", run, "lost") == "queued"


def test_max_active_tasks_reached(env: Why) -> None:
    run = env.trigger("why_limits", "r1")
    env.scheduler_pass()  # three roots, max_active_tasks=2: two queued, one scheduled
    states = {task: env.state("why_limits", run, task) for task in "abc"}
    assert sorted(states.values()) == ["queued", "queued", "scheduled"]
    waiting = next(task for task, state in states.items() if state == "scheduled")

    blocker = env.blocker(env.why("why_limits", waiting, run), w.MAX_ACTIVE_TASKS)
    assert blocker.details == {"active": 2, "limit": 2}
    assert "max_active_tasks is 2" in blocker.message

    done = next(task for task, state in states.items() if state == "queued")
    env.set_state("why_limits", run, done, "success")
    assert w.MAX_ACTIVE_TASKS not in env.why("why_limits", waiting, run).codes
    env.scheduler_pass()
    assert env.state("why_limits", run, waiting) == "queued"


def test_max_active_runs_reached(env: Why) -> None:
    first = env.trigger("why_limits", "r1", datetime(2024, 1, 1, tzinfo=UTC))
    second = env.trigger("why_limits", "r2", datetime(2024, 1, 2, tzinfo=UTC))
    env.scheduler_pass()
    assert (env.run_state("why_limits", first), env.run_state("why_limits", second)) == ("running", "queued")

    report = env.why("why_limits", "a", second)
    blocker = env.blocker(report, w.MAX_ACTIVE_RUNS)
    assert blocker.details == {"running": 1, "limit": 1}
    assert "1 running run(s) (r1)" in blocker.message and "max_active_runs is 1" in blocker.message
    assert report.run_state == "queued" and report.instances == ()

    env.set_run_state("why_limits", first, "success")
    report = env.why("why_limits", "a", second)
    assert report.codes == [w.RUN_QUEUED]
    env.scheduler_pass()
    assert env.run_state("why_limits", second) == "running"


def test_a_paused_dag(env: Why) -> None:
    from zonda.operations.dags import set_paused

    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    env.set_state("why_basic", run, "up", "scheduled")
    set_paused(env.engine, "why_basic", True)

    blocker = env.blocker(env.why("why_basic", "up", run), w.DAG_PAUSED)
    assert "zonda dags unpause why_basic" in blocker.message
    env.scheduler_pass()
    assert env.state("why_basic", run, "up") == "scheduled"

    set_paused(env.engine, "why_basic", False)
    assert env.why("why_basic", "up", run).codes == []
    env.scheduler_pass()
    assert env.state("why_basic", run, "up") == "queued"


def test_no_scheduler_heartbeat(env: Why) -> None:
    from zonda.scheduler import jobs

    run = env.trigger("why_basic", "r1")
    assert env.why("why_basic", "up", run).codes == [w.RUN_QUEUED]

    jobs.end_job(env.engine, env.scheduler_job)
    report = env.why("why_basic", "up", run)
    assert report.codes == [w.RUN_QUEUED, w.NO_SCHEDULER]
    message = env.blocker(report, w.NO_SCHEDULER).message
    assert "no scheduler is running" in message and "the last one heartbeated at" in message

    env.scheduler_pass()
    env.set_state("why_basic", run, "up", "success")
    # Finished: nothing waits for a scheduler any more, so its absence is not a blocker for this task.
    assert env.why("why_basic", "up", run).codes == [w.TASK_FINISHED]


@pytest.mark.parametrize(("state", "code"), [("up_for_retry", w.RETRY_WAIT), ("up_for_reschedule", w.RESCHEDULE_WAIT)])
def test_a_retry_or_reschedule_time_not_reached(env: Why, state: str, code: str) -> None:
    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    later = datetime.now(UTC) + timedelta(minutes=5)
    env.set_state("why_basic", run, "up", state, try_number=1, ready_at=later)

    blocker = env.blocker(env.why("why_basic", "up", run), code)
    assert blocker.details == {"ready_at": later.isoformat()}
    assert later.isoformat(timespec="seconds") in blocker.message
    env.scheduler_pass()
    assert env.state("why_basic", run, "up") == state

    env.set_state("why_basic", run, "up", state, ready_at=datetime.now(UTC) - timedelta(seconds=1))
    assert env.why("why_basic", "up", run).codes == []
    env.scheduler_pass()
    assert env.state("why_basic", run, "up") == "queued"


def test_a_depends_on_past_predecessor_not_succeeded(env: Why) -> None:
    first = env.trigger("why_past", "r1", datetime(2024, 1, 1, tzinfo=UTC))
    second = env.trigger("why_past", "r2", datetime(2024, 1, 2, tzinfo=UTC))
    env.scheduler_pass()
    env.set_state("why_past", first, "step", "failed")
    env.scheduler_pass()
    assert env.state("why_past", second, "step") is None

    blocker = env.blocker(env.why("why_past", "step", second), w.DEPENDS_ON_PAST)
    assert blocker.details == {"previous_run": "r1", "previous_state": "failed"}
    assert "depends_on_past" in blocker.message

    env.set_state("why_past", first, "step", "success")
    assert env.why("why_past", "step", second).codes == []
    env.scheduler_pass()
    assert env.state("why_past", second, "step") == "queued"


def test_finished_tasks_and_runs(env: Why) -> None:
    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    env.set_state("why_basic", run, "up", "success", end_date=datetime(2024, 5, 1, tzinfo=UTC))
    blocker = env.blocker(env.why("why_basic", "up", run), w.TASK_FINISHED)
    assert blocker.details == {"state": "success"}
    assert "already finished: success at 2024-05-01T00:00:00+00:00" in blocker.message

    env.set_run_state("why_basic", run, "failed")
    report = env.why("why_basic", "down", run)
    assert report.codes == [w.RUN_FINISHED]
    assert "zonda tasks clear why_basic --task-regex '^down$' --run-id r1" in report.blockers[0].message


def test_running_and_queued_instances_are_not_blocked(env: Why) -> None:
    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    report = env.why("why_basic", "up", run)
    assert report.codes == [] and "is queued" in report.notes[0]
    env.set_state("why_basic", run, "up", "running", hostname="worker-7", pid=4242)
    report = env.why("why_basic", "up", run)
    assert report.codes == [] and "is running" in report.notes[0] and "worker-7 (pid 4242)" in report.notes[0]


def test_a_deferred_task_without_a_triggerer(env: Why) -> None:
    from zonda.scheduler import jobs

    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    env.set_state("why_basic", run, "up", "deferred", try_number=1)
    assert env.why("why_basic", "up", run).codes == [w.DEFERRED, w.NO_TRIGGERER]
    jobs.start_job(env.engine, "triggerer")
    assert env.why("why_basic", "up", run).codes == [w.DEFERRED]


def test_unknown_names_are_not_found_with_suggestions(env: Why) -> None:
    run = env.trigger("why_basic", "r1")
    with pytest.raises(DagNotFound, match="why_basic"):
        env.why("why_basik", "up", run)
    with pytest.raises(TaskNotFound, match="did you mean 'down'"):
        env.why("why_basic", "dwn", run)
    with pytest.raises(NotFound, match="has no run 'r2'"):
        env.why("why_basic", "up", "r2")
    env.scheduler_pass()
    with pytest.raises(NotFound, match=r"no instance why_basic.up\[3\]"):
        env.why("why_basic", "up", run, map_index=3)


def test_the_cli_prints_the_blockers_as_text_and_json(env: Why, capsys: pytest.CaptureFixture[str]) -> None:
    from zonda.cli import main

    run = env.trigger("why_basic", "r1")
    env.scheduler_pass()
    env.set_state("why_basic", run, "up", "running")

    assert main(["tasks", "why", "why_basic", "down", run]) == 0
    out = capsys.readouterr().out
    assert "why_basic.down in run r1 (running): none" in out
    assert "[trigger_rule]" in out and "up (running)" in out

    assert main(["tasks", "why", "why_basic", "down", run, "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["blocked"] is True
    assert data["blockers"][0]["code"] == "trigger_rule"
    assert data["blockers"][0]["details"]["upstream"] == {"up": "running", "other": "queued"}
    assert data["instances"] == [{"map_index": -1, "state": "none", "try_number": 0}]

    assert main(["tasks", "why", "why_basic", "nope", run]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: DAG 'why_basic' has no task 'nope'") and err.count("\n") == 1


def test_mapped_instances_are_reported_one_by_one(env: Why) -> None:
    run = env.trigger("why_mapped", "r1")
    env.scheduler_pass()  # expands to three instances; the one-slot pool takes one
    report = env.why("why_mapped", "each", run)
    states = {i.map_index: i.state for i in report.instances}
    assert sorted(states) == [0, 1, 2] and sorted(states.values()) == ["queued", "scheduled", "scheduled"]
    waiting = sorted(index for index, state in states.items() if state == "scheduled")
    assert [(b.code, b.map_index) for b in report.blockers] == [(w.POOL_FULL, i) for i in waiting]
    assert f"each[{waiting[0]}] needs 1" in report.blockers[0].message

    running = next(index for index, state in states.items() if state == "queued")
    only = env.why("why_mapped", "each", run, map_index=running)
    assert [i.map_index for i in only.instances] == [running] and only.codes == []
