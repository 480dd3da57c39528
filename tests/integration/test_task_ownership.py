"""A task is stopped, or its process's exit charged to its task instance, only by evidence that it no longer holds
the row: never because it is merely slow.

On a busy machine a task process can take longer than one heartbeat interval to claim its row (``queued ->
running``). A heartbeat in that window matches no row; if the task process claims between that miss and a look
at the row, the row reads ``running``, which is not "another process" when its pid is the task's own. Likewise,
a second workload for the same try (queued again after its scheduler was briefly taken for dead) loses the claim
and ends: its exit must not fail the try that another process runs, or that another scheduler queued. Real
processes on PostgreSQL; every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import scheduler_helpers as h

pytestmark = [pytest.mark.postgres]

ME, OTHER = 4242, 4343


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"state": "queued", "pid": None}, "unclaimed"),  # not claimed yet: a heartbeat may come first
        ({"state": "queued", "pid": ME}, "unclaimed"),  # queued again for a retry; the pid is the old try's
        ({"state": "running", "pid": ME}, "this process"),  # claimed between the heartbeat and this look
        ({"state": "success", "pid": ME}, "this process"),  # recorded its own end just before the heartbeat
        ({"state": "up_for_retry", "pid": ME}, "this process"),
        ({"state": "deferred", "pid": ME}, "this process"),
        ({"state": "running", "pid": OTHER}, "another process"),  # a duplicate workload lost the claim
        ({"state": "up_for_retry", "pid": None}, "nobody"),  # the scheduler declared the process dead
        ({"state": None, "pid": None}, "nobody"),  # tasks clear
        ({"state": "removed", "pid": ME}, "nobody"),  # not a state a task process writes
        (None, "nobody"),  # the run was deleted
    ],
)
def test_who_holds_a_try_after_a_missed_heartbeat(row: dict[str, Any] | None, expected: str) -> None:
    from zonda.executors.ownership import holder

    assert holder(row, ME).value == expected


MANY_SHORT = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    _time.sleep(0.05)
    record(context)


with DAG("short_tasks", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=64):
    for i in range(24):
        PythonOperator(task_id=f"t{i:02d}", python_callable=work)
"""


@pytest.fixture
def configure(zonda_home: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Any:
    """``configure(**scheduler_options)``: the home on a fresh PostgreSQL database; (settings, metastore)."""
    made: list[Any] = []

    def make(**options: Any) -> tuple[Any, Any]:
        overrides = {("scheduler", key): value for key, value in options.items()}
        made.append(h.configure(zonda_home, monkeypatch, postgres_url, overrides))
        return made[-1]

    try:
        yield make
    finally:
        for _, metastore in made:
            metastore.dispose()


def test_a_worker_never_stops_its_own_task_that_claimed_after_a_missed_heartbeat(
    configure: Any, zonda_home: Path, postgres_url: str
) -> None:
    """The worker heartbeats without pause (interval ~0), so many heartbeats miss a row that is still queued,
    and task processes claim between such a miss and the worker's look at the row (what a busy machine does
    now and then with the usual interval). No task may be stopped for it."""
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = configure(task_heartbeat_interval=0.0005, task_heartbeat_timeout=60)
    ledger = zonda_home / "ledger.txt"
    h.write_dag(zonda_home, "short.py", MANY_SHORT, ledger=ledger)
    h.store_dags(settings, metastore)
    runs = [int(trigger_dag(metastore.engine, "short_tasks", run_id=f"r{i}")["id"]) for i in range(2)]
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=6, settings=settings), metastore=metastore)
    states = h.drive(scheduler, runs, timeout=60)
    assert set(states.values()) == {"success"}, h.unsuccessful_report(metastore.engine, zonda_home, runs)
    ends = [e for e in h.read_ledger(ledger) if e.event == "end"]
    assert len(ends) == 48 and not h.duplicates(ends, "end")


ONE_TASK = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("one_task", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="work", python_callable=work)
"""


def test_tasks_run_is_not_stopped_by_its_heartbeat_while_its_claim_waits(
    configure: Any, zonda_home: Path, postgres_url: str
) -> None:
    """``zonda tasks run`` heartbeats from a thread, which starts beating once the try is marked running, just
    before the claim. Here the claim waits on a row lock (another transaction holds the row, as a busy database
    does now and then) for many heartbeat intervals: the process must wait, then run the task, not stop itself."""
    from sqlalchemy import select, text, update

    from zonda.metastore import tables as t
    from zonda.scheduler.decisions import create_task_instances
    from zonda.scheduler.runs import load_serialized, trigger_dag

    settings, metastore = configure(task_heartbeat_interval=0.05, task_heartbeat_timeout=60)
    ledger = zonda_home / "ledger.txt"
    h.write_dag(zonda_home, "one.py", ONE_TASK, ledger=ledger)
    h.store_dags(settings, metastore)
    engine = metastore.engine
    run_id = int(trigger_dag(engine, "one_task", run_id="r1")["id"])
    ti = t.task_instance
    with engine.begin() as conn:
        run = conn.execute(select(t.dag_run).where(t.dag_run.c.id == run_id)).one()
        create_task_instances(conn, load_serialized(conn, "one_task"), run)
        conn.execute(update(ti).where(ti.c.dag_run_id == run_id).values(state="queued"))
    env = h.subprocess_env(zonda_home, postgres_url, {("scheduler", "task_heartbeat_interval"): 0.05})
    cli = [sys.executable, "-m", "zonda", "tasks", "run", "one_task", "work", "r1"]
    with engine.connect() as holder:
        holder.execute(select(ti.c.id).where(ti.c.dag_run_id == run_id).with_for_update()).all()
        proc = subprocess.Popen(cli, env=env, cwd=zonda_home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:

            def claim_waits() -> bool:
                with engine.connect() as conn:
                    waiting = conn.execute(
                        text(
                            "select count(*) from pg_stat_activity where datname = current_database() "
                            "and wait_event_type = 'Lock'"
                        )
                    ).scalar_one()
                return bool(waiting) or proc.poll() is not None

            h.wait_for(claim_waits, 30, what="the task's claim to wait for the row lock")
            time.sleep(0.5)  # ten heartbeat intervals while the claim waits
            holder.rollback()  # let the claim through
            output, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text_output = output.decode(errors="replace")
    assert proc.returncode == 0, text_output
    with engine.connect() as conn:
        state = conn.execute(select(ti.c.state).where(ti.c.dag_run_id == run_id)).scalar_one()
    assert state == "success", text_output + h.unsuccessful_report(engine, zonda_home, [run_id])
    assert [e.event for e in h.read_ledger(ledger)] == ["end"]
    assert os.path.exists(zonda_home / "logs")


FOUR_TASKS = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator

with DAG("four_tasks", schedule=None, start_date=datetime(2024, 1, 1)):
    for name in ("queued_here", "queued_elsewhere", "running_here", "running_elsewhere"):
        PythonOperator(task_id=name, python_callable=print)
"""


def test_a_process_exit_fails_only_the_try_that_process_holds(
    configure: Any, zonda_home: Path, postgres_url: str
) -> None:
    """Task processes that ended without recording an end state (exit 1): the try fails when the row is still
    running in that pid; an instance this scheduler queued and nobody claimed is queued again (nothing ran);
    both are left alone when another scheduler queued it again or another process runs it (a duplicate
    workload that lost the claim)."""
    from sqlalchemy import select, update

    from zonda.executors.base import TaskEvent, Workload
    from zonda.executors.local import LocalExecutor
    from zonda.metastore import tables as t
    from zonda.scheduler import jobs
    from zonda.scheduler.decisions import create_task_instances
    from zonda.scheduler.runs import load_serialized, trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = configure()
    h.write_dag(zonda_home, "four.py", FOUR_TASKS)
    h.store_dags(settings, metastore)
    engine = metastore.engine
    run_id = int(trigger_dag(engine, "four_tasks", run_id="r1")["id"])
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=1, settings=settings), metastore=metastore)
    scheduler.job_id = jobs.start_job(engine, "scheduler", "LocalExecutor")
    other_job = jobs.start_job(engine, "scheduler", "LocalExecutor")
    exited_pid, other_pid = 40001, 40002
    ti = t.task_instance
    rows = {
        "queued_here": {"state": "queued", "queued_by_job_id": scheduler.job_id, "try_number": 0},
        "queued_elsewhere": {"state": "queued", "queued_by_job_id": other_job, "try_number": 0},
        "running_here": {"state": "running", "queued_by_job_id": scheduler.job_id, "try_number": 1, "pid": exited_pid},
        "running_elsewhere": {"state": "running", "queued_by_job_id": other_job, "try_number": 1, "pid": other_pid},
    }
    with engine.begin() as conn:
        run = conn.execute(select(t.dag_run).where(t.dag_run.c.id == run_id)).one()
        create_task_instances(conn, load_serialized(conn, "four_tasks"), run)
        for task_id, values in rows.items():
            conn.execute(update(ti).where(ti.c.dag_run_id == run_id, ti.c.task_id == task_id).values(**values))
        ids = dict(conn.execute(select(ti.c.task_id, ti.c.id).where(ti.c.dag_run_id == run_id)).all())
    events = [
        TaskEvent(
            Workload(
                ids[task_id],
                "four_tasks",
                "r1",
                task_id,
                -1,
                1,
                str(zonda_home / "dags" / "four.py"),
                dag_run_id=run_id,
            ),
            1,
            pid=exited_pid,
        )
        for task_id in rows
    ]
    scheduler._process_events(events)
    assert h.states_by_task(engine, run_id) == {
        "queued_here": "scheduled",  # never claimed, so nothing ran: queued again, no try used up
        "queued_elsewhere": "queued",
        "running_here": "failed",
        "running_elsewhere": "running",
    }


def test_a_workload_that_keeps_dying_before_its_claim_is_queued_again_a_bounded_number_of_times(
    configure: Any, zonda_home: Path
) -> None:
    """An instance queued by this scheduler whose process exits 1 before claiming it is queued again without
    using up a try; after Scheduler.MAX_REQUEUES such ends in a row the next one fails the try, so a workload
    that can never start does not loop for ever."""
    from sqlalchemy import select, update

    from zonda.executors.base import TaskEvent, Workload
    from zonda.executors.local import LocalExecutor
    from zonda.metastore import tables as t
    from zonda.scheduler import jobs
    from zonda.scheduler.decisions import create_task_instances
    from zonda.scheduler.runs import load_serialized, trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = configure()
    h.write_dag(zonda_home, "four.py", FOUR_TASKS)
    h.store_dags(settings, metastore)
    engine = metastore.engine
    run_id = int(trigger_dag(engine, "four_tasks", run_id="r1")["id"])
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=1, settings=settings), metastore=metastore)
    scheduler.job_id = jobs.start_job(engine, "scheduler", "LocalExecutor")
    ti = t.task_instance
    with engine.begin() as conn:
        run = conn.execute(select(t.dag_run).where(t.dag_run.c.id == run_id)).one()
        create_task_instances(conn, load_serialized(conn, "four_tasks"), run)
        ti_id = conn.execute(select(ti.c.id).where(ti.c.dag_run_id == run_id, ti.c.task_id == "queued_here")).scalar()
    workload = Workload(ti_id, "four_tasks", "r1", "queued_here", -1, 1, str(zonda_home / "dags" / "four.py"))
    seen = []
    for _ in range(Scheduler.MAX_REQUEUES + 1):
        with engine.begin() as conn:  # queued by this scheduler again, as its next pass would
            conn.execute(update(ti).where(ti.c.id == ti_id).values(state="queued", queued_by_job_id=scheduler.job_id))
        scheduler._process_events([TaskEvent(workload, 1, pid=40001)])
        (row,) = [r for r in h.task_instances(engine, run_id) if r.task_id == "queued_here"]
        seen.append((row.state, row.try_number))
    assert seen == [("scheduled", 0)] * Scheduler.MAX_REQUEUES + [("failed", 0)], seen


TERMINATED_THEN_NEXT = """
import os
import signal
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def terminated(**context):
    record(context, "start")
    os.kill(os.getpid(), signal.SIGTERM)  # what the worker sends a task whose row another process took


def after(**context):
    record(context, "start")


with DAG("terminated", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=terminated)
    first >> PythonOperator(task_id="after", python_callable=after, trigger_rule="all_done")
"""


def test_a_task_process_that_received_sigterm_runs_no_further_task(configure: Any, zonda_home: Path) -> None:
    """SIGTERM becomes an exception wherever the process is, even inside a section of ``logging`` that holds the
    module lock without a ``finally``; a kept process would then hang in its next task while its worker
    heartbeats it as alive (seen while a worker stopped its own tasks: runs stuck with instances running
    forever). So the next workload gets a fresh process (one worker here: it would otherwise reuse it)."""
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = configure()
    ledger = zonda_home / "ledger.txt"
    h.write_dag(zonda_home, "terminated.py", TERMINATED_THEN_NEXT, ledger=ledger)
    h.store_dags(settings, metastore)
    run = int(trigger_dag(metastore.engine, "terminated", run_id="r1")["id"])
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=1, settings=settings), metastore=metastore)
    assert h.drive(scheduler, [run], timeout=30) == {run: "success"}  # the leaf decides: all_done ran
    assert h.states_by_task(metastore.engine, run) == {"after": "success", "first": "failed"}
    pids = {e.task_id: e.pid for e in h.read_ledger(ledger)}
    assert pids["first"] != pids["after"]
