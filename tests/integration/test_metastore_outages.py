"""Metastore outages, with real processes: a private PostgreSQL cluster stopped for 10 s while tasks run, the
connections of kept (idle) task processes terminated, a workload that dies before claiming its instance, and a
queued instance whose workload is lost.

The ledger (see :mod:`scheduler_helpers`) proves what ran: no task is lost and none runs twice. Every test runs
beside two CPU hogs, so it holds on a machine as busy as a full test-suite run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import private_postgres as pg
import pytest
import scheduler_helpers as h

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FAST = {
    ("scheduler", "task_heartbeat_interval"): 0.2,
    ("scheduler", "task_heartbeat_timeout"): 2,
    ("scheduler", "scheduler_heartbeat_timeout"): 3,
    ("scheduler", "poll_interval"): 0.5,
    ("database", "outage_backoff_max"): 1,
}


@pytest.fixture(autouse=True)
def _under_load() -> Any:
    with h.cpu_hogs(2):
        yield


class Setup(h.LedgerSetup):
    """The shared set-up with the fast settings above, waiting for runs through the outage a test causes."""

    def __init__(self, home: Path, url: str, monkeypatch: pytest.MonkeyPatch, options: dict[Any, Any]) -> None:
        super().__init__(home, url, monkeypatch, {**FAST, **options})

    def wait_runs(self, run_ids: list[int], timeout: float, process: h.SchedulerProcess) -> dict[int, str]:
        """Bounded wait until every run ended; fails at once if the scheduler process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = h.run_states(self.engine, run_ids)
            except Exception:  # this test's own connection may have been dropped by the fault: ask again
                self.engine.dispose()
                states = {}
            if len(states) == len(run_ids) and all(s in h.TERMINAL_RUN for s in states.values()):
                return states
            if process.proc.poll() is not None:
                raise AssertionError(f"the scheduler exited ({process.proc.returncode}):\n{process.output()[-5000:]}")
            if time.monotonic() >= deadline:
                detail = Counter(r.state for run_id in run_ids for r in h.task_instances(self.engine, run_id))
                raise AssertionError(
                    f"runs not done within {timeout} s: {states}; instances {dict(detail)}\n{process.output()[-5000:]}"
                )
            time.sleep(0.2)

    def assert_each_task_ran_once(self, run_ids: list[int], process: h.SchedulerProcess) -> None:
        """Every instance succeeded in its first try, and the ledger shows exactly one start and one end of it."""
        rows = [r for run_id in run_ids for r in h.task_instances(self.engine, run_id)]
        assert rows
        bad = [(r.run_id, r.task_id, r.state, r.try_number) for r in rows if (r.state, r.try_number) != ("success", 1)]
        assert not bad, (bad, h.unsuccessful_report(self.engine, self.home, run_ids, [process.output()]))
        entries = self.entries()
        for event in ("start", "end"):
            counts = Counter((e.run_id, e.task_id) for e in entries if e.event == event)
            assert counts == Counter({(r.run_id, r.task_id): 1 for r in rows}), (event, counts)
        assert {e.try_number for e in entries} == {1}


def _stop_scheduler(process: h.SchedulerProcess) -> None:
    os.kill(process.pid, signal.SIGTERM)
    assert process.proc.wait(60) == 0, process.output()[-5000:]


# --- 1. the metastore server stops for 10 s while tasks run ---------------------------------------------------------

TWO_WAVES = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context, "start")
    for _ in range(1200):  # until the test has stopped the server (at most 60 s): mid-run when it stops
        if _os.path.exists(LEDGER + ".outage"):
            break
        _time.sleep(0.05)
    record(context)


with DAG("two_waves", schedule=None, start_date=datetime(2024, 1, 1), max_active_runs=4):
    first = [
        PythonOperator(task_id=f"a{i}", python_callable=work, retries=2, retry_delay=timedelta(seconds=0))
        for i in range(3)
    ]
    second = [
        PythonOperator(task_id=f"b{i}", python_callable=work, retries=2, retry_delay=timedelta(seconds=0))
        for i in range(3)
    ]
    for upstream in first:
        upstream >> second
"""


def test_server_stopped_for_10_s_mid_run_every_run_succeeds_and_nothing_runs_twice(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private cluster (the shared server is never stopped). The scheduler, its DAG processor and triggerer,
    the LocalExecutor's workers and the task processes all live through the outage: tasks that end while the
    server is down record their end once it is back (no second try), the rest then runs, and each service
    logs the outage once, not once per retry."""
    with pg.private_postgres() as cluster:
        url = cluster.create_database("zonda_outage")
        setup = Setup(zonda_home, url, monkeypatch, {("core", "parallelism"): 6})
        setup.dag("two_waves.py", TWO_WAVES)
        h.store_dags(setup.settings, setup.metastore)
        runs = [setup.trigger("two_waves", run_id=f"r{i}") for i in range(2)]
        setup.metastore.dispose()
        with h.scheduler_processes() as started:
            scheduler = setup.start_scheduler(started, "scheduler", dag_processor=True, triggerer=True)
            h.wait_for(lambda: len([e for e in setup.entries() if e.event == "start"]) >= 3, 90, what="tasks running")
            cluster.stop("fast")  # every connection is terminated; new ones are refused
            stopped_at = time.time()
            Path(f"{setup.ledger}.outage").touch()  # the running tasks end now, while the server is down
            entries = setup.entries()
            in_flight = len([e for e in entries if e.event == "start"]) - len([e for e in entries if e.event == "end"])
            time.sleep(10)
            assert scheduler.proc.poll() is None, scheduler.output()[-5000:]
            restarted_at = time.time()
            cluster.start()
            setup.engine.dispose()  # this test's pooled connections died with the server
            assert setup.wait_runs(runs, 120, scheduler) == {run: "success" for run in runs}
            _stop_scheduler(scheduler)
        setup.assert_each_task_ran_once(runs, scheduler)
        assert in_flight > 0, "the outage should hit tasks while they run"
        ended_in_outage = [e for e in setup.entries() if e.event == "end" and stopped_at < e.at < restarted_at]
        assert ended_in_outage, "some tasks should end while the server is down (their end is recorded later)"
        log = scheduler.output()
        assert log.count("scheduler: metastore unavailable") == 1, log[-5000:]
        assert log.count("scheduler: metastore available again") == 1, log[-5000:]
        for service in ("DAG processor", "triggerer"):
            assert log.count(f"{service}: metastore unavailable") <= 1, log[-5000:]
        setup.metastore.dispose()


# --- 2. connections of idle kept task processes terminated ------------------------------------------------------------

QUICK = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context, "start")
    record(context)


with DAG("quick", schedule=None, start_date=datetime(2024, 1, 1), max_active_runs=4):
    for i in range(3):
        PythonOperator(task_id=f"t{i}", python_callable=work)
"""


def _terminate_connections(url: str) -> int:
    """``pg_terminate_backend`` every connection to the database of ``url`` (on its server): how many."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname="postgres", autocommit=True
    ) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (parsed.database,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def test_connections_terminated_while_kept_task_processes_idle_then_more_runs_all_succeed(
    zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen before: the kept processes died on their dead connection at the next workload, exited 0, and the
    instances stayed queued with try 0 for minutes. Now they reconnect on first use."""
    setup = Setup(zonda_home, postgres_url, monkeypatch, {("core", "parallelism"): 3})
    setup.dag("quick.py", QUICK)
    h.store_dags(setup.settings, setup.metastore)
    with h.scheduler_processes() as started:
        scheduler = setup.start_scheduler(started, "scheduler")
        first = [setup.trigger("quick", run_id="before")]
        assert setup.wait_runs(first, 60, scheduler) == {first[0]: "success"}
        kept = {e.pid for e in setup.entries()}  # the task processes, kept for their next workloads
        time.sleep(0.5)  # they are idle now
        setup.engine.dispose()
        terminated = _terminate_connections(postgres_url)
        assert terminated >= len(kept), (terminated, kept)
        runs = [setup.trigger("quick", run_id=f"after-{i}") for i in range(3)]
        assert setup.wait_runs(runs, 90, scheduler) == {run: "success" for run in runs}
        _stop_scheduler(scheduler)
    setup.assert_each_task_ran_once(first + runs, scheduler)
    rows = h.task_instances(setup.engine, dag_id="quick")
    assert not [r for r in rows if r.state == "queued"]
    setup.metastore.dispose()


# --- 3. a kept task process dies before claiming its workload -----------------------------------------------------------

SELF_REMOVING = """
import os
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def remove_dag_file(**context):
    record(context)
    os.remove(context["dag"].fileloc)


def after(**context):
    record(context)


with DAG("self_removing", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="first", python_callable=remove_dag_file) >> PythonOperator(
        task_id="second", python_callable=after
    )
"""


def test_a_workload_whose_kept_process_dies_before_claiming_does_not_stay_queued(
    zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG file disappears between two workloads of one kept task process: the process dies loading it,
    before claiming. It used to exit with the previous workload's 0, so the instance stayed queued for good.
    Now the scheduler sees the failure, queues the instance again, and the fresh process records why the try
    cannot run."""
    setup = Setup(zonda_home, postgres_url, monkeypatch, {("core", "parallelism"): 1})
    path = setup.dag("self_removing.py", SELF_REMOVING)
    h.store_dags(setup.settings, setup.metastore)
    with h.scheduler_processes() as started:
        scheduler = setup.start_scheduler(started, "scheduler")
        run = setup.trigger("self_removing")
        assert setup.wait_runs([run], 60, scheduler) == {run: "failed"}
        _stop_scheduler(scheduler)
    assert not path.exists()
    rows = h.task_instances(setup.engine, run)
    states = {r.task_id: (r.state, r.try_number) for r in rows}
    assert states == {"first": ("success", 1), "second": ("failed", 1)}, states
    assert [e.task_id for e in setup.entries()] == ["first"]
    from zonda.runner.logs import attempt_log_path

    log = attempt_log_path(setup.home / "logs", "self_removing", rows[0].run_id, "second", -1, 1)
    assert "cannot read the DAG file" in log.read_text(encoding="utf-8")
    assert "queued again" in scheduler.output(), scheduler.output()[-5000:]
    setup.metastore.dispose()


# --- 4. a queued instance whose workload is gone ----------------------------------------------------------------------

ONE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("one", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="only", python_callable=work)
"""


def test_an_instance_queued_here_whose_workload_is_gone_is_queued_again_and_runs_once(
    zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row says this scheduler queued the instance, but its executor has no such workload (the report of
    its end was lost, or the queueing transaction committed while the scheduler saw an error): within
    task_heartbeat_timeout it is queued again, and runs exactly once. Instances queued by another scheduler are
    not touched."""
    from sqlalchemy import select, update

    from zonda.executors.local import LocalExecutor
    from zonda.metastore import tables as t
    from zonda.scheduler import jobs
    from zonda.scheduler.decisions import create_task_instances
    from zonda.scheduler.runs import load_serialized
    from zonda.scheduler.scheduler import Scheduler

    setup = Setup(zonda_home, postgres_url, monkeypatch, {("core", "parallelism"): 2})
    setup.dag("one.py", ONE)
    setup.dag("two.py", ONE.replace('"one"', '"two"'))
    h.store_dags(setup.settings, setup.metastore)
    engine = setup.engine
    lost, elsewhere = setup.trigger("one"), setup.trigger("two")
    scheduler = Scheduler(
        setup.settings, executor=LocalExecutor(parallelism=2, settings=setup.settings), metastore=setup.metastore
    )
    scheduler.start()
    other_job = jobs.start_job(engine, "scheduler", "LocalExecutor")
    ti = t.task_instance
    with engine.begin() as conn:
        for run_id, dag_id, job in ((lost, "one", scheduler.job_id), (elsewhere, "two", other_job)):
            run = conn.execute(select(t.dag_run).where(t.dag_run.c.id == run_id)).one()
            create_task_instances(conn, load_serialized(conn, dag_id), run)
            conn.execute(
                update(ti).where(ti.c.dag_run_id == run_id).values(state="queued", queued_by_job_id=job, try_number=0)
            )
        conn.execute(update(t.dag_run).where(t.dag_run.c.id.in_([lost, elsewhere])).values(state="running"))

    def keep_other_alive() -> None:
        jobs.heartbeat(engine, other_job)

    assert h.drive(scheduler, [lost], 60, start=False, on_pass=keep_other_alive) == {lost: "success"}
    (row,) = h.task_instances(engine, lost)
    assert (row.state, row.try_number) == ("success", 1)
    assert [(e.task_id, e.try_number) for e in setup.entries()] == [("only", 1)]
    (other,) = h.task_instances(engine, elsewhere)
    assert (other.state, other.queued_by_job_id) == ("queued", other_job)
    setup.metastore.dispose()


# --- the building blocks, on a private server -------------------------------------------------------------------------


def test_a_stopped_server_is_transient_and_a_patient_write_waits_until_it_is_back() -> None:
    from sqlalchemy import text

    from zonda.metastore.db import Metastore
    from zonda.metastore.engine import MetastoreUnreachable
    from zonda.metastore.retry import is_transient, retry_for, retry_transient

    with pg.private_postgres() as cluster:
        metastore = Metastore(cluster.create_database("blocks"))
        engine = metastore.engine
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n int)"))
        cluster.stop("fast")
        with pytest.raises(MetastoreUnreachable) as info, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert is_transient(info.value)
        with pytest.raises(MetastoreUnreachable):  # a few quick retries are not enough for a restart
            retry_transient(lambda: engine.connect().close(), what="test")
        restart = threading.Timer(2.0, cluster.start)
        restart.start()
        try:

            def write() -> None:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (1)"))

            retry_for(write, what="test write", timeout=60)
        finally:
            restart.join(60)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        metastore.dispose()


def test_the_outage_guard_logs_one_line_per_outage_and_raises_other_errors(caplog: pytest.LogCaptureFixture) -> None:
    from zonda.metastore.engine import MetastoreUnreachable
    from zonda.metastore.retry import OutageGuard

    guard = OutageGuard("svc", max_delay=0.02, first_delay=0.001)
    outage = MetastoreUnreachable("cannot connect to the metastore at postgresql://x: refused")
    with caplog.at_level(logging.WARNING, logger="zonda.metastore"):
        for _ in range(2):
            for _ in range(20):
                guard.failed(outage)
            assert guard.quiet_for() == 0.0
            guard.succeeded()
            guard.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0].split(" after")[0] for line in lines] == [
        "svc: metastore unavailable",
        "svc: metastore available again",
    ] * 2, lines
    assert guard.outages == 2 and guard.quiet_for() < 60
    with pytest.raises(KeyError):
        guard.failed(KeyError("a bug is not an outage"))


# --- 5. services started while the server is down ----------------------------------------------------------------------

DEFERRING = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators.base import BaseOperator
from zonda.triggers import TimeDeltaTrigger


class Deferring(BaseOperator):
    def execute(self, context):
        record(context, "start")
        self.defer(trigger=TimeDeltaTrigger(DELAY), method_name="resume", timeout=timedelta(minutes=5))

    def resume(self, context, event=None):
        record(context)


with DAG("deferring", schedule=None, start_date=datetime(2024, 1, 1)):
    Deferring(task_id="wait", retries=2, retry_delay=timedelta(seconds=0))
"""

#: The private cluster trusts every local connection, so any password works; it must never be printed.
PASSWORD = "not-to-be-printed-7f3a"


@pytest.mark.parametrize(
    "commands",
    [{"scheduler": ["scheduler"], "triggerer": ["triggerer"]}, {"standalone": ["standalone", "--port", "FREE"]}],
    ids=["scheduler-and-triggerer", "standalone"],
)
def test_services_started_while_the_server_is_down_wait_for_it_then_run_the_dag(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch, commands: dict[str, list[str]]
) -> None:
    """`zonda scheduler` and `zonda triggerer` (or `zonda standalone`) started against a stopped server say once
    that it is unreachable (its URL without the password) and wait; once it is up, a run with a deferred task
    completes, once."""
    with pg.private_postgres() as cluster:
        url = cluster.create_database("zonda_late").replace("postgres@", f"postgres:{PASSWORD}@")
        setup = Setup(zonda_home, url, monkeypatch, {("core", "parallelism"): 2})
        setup.dag("deferring.py", "DELAY = 1\n" + DEFERRING)
        h.store_dags(setup.settings, setup.metastore)
        run = setup.trigger("deferring", run_id="late")
        setup.metastore.dispose()
        cluster.stop("fast")
        with h.scheduler_processes() as started:
            processes = {
                name: setup.start_command(
                    started, name, *[str(pg.free_port()) if arg == "FREE" else arg for arg in argv]
                )
                for name, argv in commands.items()
            }
            for process in processes.values():
                h.wait_for(
                    lambda process=process: "metastore unreachable at" in process.output() or process.proc.poll(),
                    120,
                    what="the services to say the metastore is unreachable",
                )
            time.sleep(3)  # a few backoff rounds
            for process in processes.values():
                assert process.proc.poll() is None, process.output()[-5000:]
            cluster.start()
            setup.engine.dispose()
            first = next(iter(processes.values()))
            logs = "\n".join(p.output()[-3000:] for p in processes.values())
            assert setup.wait_runs([run], 120, first) == {run: "success"}, logs
            for process in processes.values():
                _stop_scheduler(process)
        setup.assert_each_task_ran_once([run], first)
        masked = f"metastore unreachable at postgresql://postgres:***@127.0.0.1:{cluster.port}/zonda_late; retrying"
        for name, process in processes.items():
            log = process.output()
            assert PASSWORD not in log
            assert log.count(f"{name}: {masked}") == 1, log[-5000:]
            assert log.count(f"{name}: metastore available again") == 1, log[-5000:]
        setup.metastore.dispose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"nosuchdb://zonda:{PASSWORD}@127.0.0.1/zonda", "unknown database 'nosuchdb'"),
        (f"postgresql://zonda:{PASSWORD}@127.0.0.1:54x32/zonda", "invalid metastore URL"),
    ],
)
@pytest.mark.parametrize("service", ["scheduler", "triggerer", "standalone"])
def test_a_metastore_url_that_can_never_work_fails_at_once_with_one_line(
    zonda_home: Path, service: str, url: str, problem: str
) -> None:
    """No waiting for a URL no wait can mend: the service exits 1 with one line naming the problem and the
    setting, the password masked, no traceback."""
    import subprocess
    import sys

    env = h.subprocess_env(zonda_home, url)
    result = subprocess.run(
        [sys.executable, "-m", "zonda", service],
        env=env,
        cwd=zonda_home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and problem in errors[0] and "sql_alchemy_conn" in errors[0], output
    assert "Traceback" not in output and PASSWORD not in output, output


# --- 6. the server stops for 10 s while a task is deferred ---------------------------------------------------------------


def test_server_stopped_for_10_s_while_a_task_is_deferred_it_resumes_once_in_its_first_try(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger fires while the server is down: the triggerer keeps running, keeps the event, and writes it
    once the server is back; the task resumes in try 1 and ends once."""
    from sqlalchemy import select

    from zonda.metastore import tables as t

    with pg.private_postgres() as cluster:
        url = cluster.create_database("zonda_deferred")
        setup = Setup(zonda_home, url, monkeypatch, {("core", "parallelism"): 2})
        setup.dag("deferring.py", "DELAY = 6\n" + DEFERRING)
        h.store_dags(setup.settings, setup.metastore)
        run = setup.trigger("deferring", run_id="outage")
        with h.scheduler_processes() as started:
            scheduler = setup.start_scheduler(started, "scheduler")
            triggerer = setup.start_command(started, "triggerer", "triggerer")

            def claimed() -> bool:
                with setup.engine.connect() as conn:
                    return bool(
                        conn.execute(
                            select(t.trigger.c.id)
                            .join(t.task_instance, t.task_instance.c.trigger_id == t.trigger.c.id)
                            .where(t.task_instance.c.dag_run_id == run, t.trigger.c.triggerer_id.is_not(None))
                        ).first()
                    )

            h.wait_for(claimed, 90, what="the triggerer to run the deferred task's trigger")
            setup.metastore.dispose()
            cluster.stop("fast")
            stopped_at = time.time()
            time.sleep(10)
            for process in (scheduler, triggerer):
                assert process.proc.poll() is None, process.output()[-5000:]
            restarted_at = time.time()
            cluster.start()
            print(f"server down for {time.time() - stopped_at:.1f} s")
            assert setup.wait_runs([run], 120, scheduler) == {run: "success"}, triggerer.output()[-3000:]
            _stop_scheduler(scheduler)
            _stop_scheduler(triggerer)
        setup.assert_each_task_ran_once([run], scheduler)
        (start,) = [e for e in setup.entries() if e.event == "start"]
        assert stopped_at < start.at + 6 < restarted_at, "the trigger should fire while the server is down"
        log = triggerer.output()
        assert log.count("triggerer: metastore unavailable") == 1, log[-5000:]
        assert log.count("triggerer: metastore available again") == 1, log[-5000:]
        setup.metastore.dispose()


def test_until_available_waits_through_unreachable_starts_and_raises_what_no_wait_mends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from zonda.exceptions import MetastoreError
    from zonda.metastore.engine import MetastoreUnreachable
    from zonda.metastore.retry import OutageGuard

    url = f"postgresql://zonda:{PASSWORD}@127.0.0.1:5/zonda"
    attempts = []

    def start() -> int:
        attempts.append(1)
        if len(attempts) < 4:
            raise MetastoreUnreachable("cannot connect to the metastore at ...", reason="Connection refused")
        return 42

    guard = OutageGuard("svc", max_delay=0.02, first_delay=0.001)
    with caplog.at_level(logging.WARNING, logger="zonda.metastore"):
        assert guard.until_available(start, url=url) == 42
    lines = [r.getMessage() for r in caplog.records]
    assert len(attempts) == 4 and len(lines) == 2, lines
    assert lines[0] == (
        "svc: metastore unreachable at postgresql://zonda:***@127.0.0.1:5/zonda; retrying every 0.02 s at most "
        "until it answers (Connection refused)"
    )
    assert lines[1].startswith("svc: metastore available again")

    def bad_url() -> None:
        attempts.append(1)
        raise MetastoreError("invalid metastore URL")

    attempts.clear()
    with pytest.raises(MetastoreError, match="invalid"):
        guard.until_available(bad_url, url=url)
    assert len(attempts) == 1
    guard.stop.set()
    assert guard.until_available(start, url=url) is None
