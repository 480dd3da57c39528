"""The scheduler as a library: DAG files parsed by the DAG processor, runs triggered with ``trigger_dag`` or
created from schedules, and ``Scheduler.run_once()`` passes with the LocalExecutor / SequentialExecutor, on
SQLite and PostgreSQL.

Each task appends a line to a ledger file (see ``tests/integration/scheduler_helpers.py``) proving what ran,
in which try and when. Concurrency limits are checked by sampling the active (queued + running) task
instances every 20 ms on a separate connection.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.exceptions import ParamValidationError, ZondaException


class Env(h.LedgerSetup):
    """The shared set-up, with schedulers driven in this process."""

    def scheduler(
        self, executor: str = "local", parallelism: int = 4, overrides: dict[tuple[str, str], Any] | None = None
    ) -> Any:
        from zonda.executors.local import LocalExecutor, SequentialExecutor
        from zonda.scheduler.scheduler import Scheduler

        settings = self.settings.with_overrides(overrides) if overrides else self.settings
        if executor == "local":
            ex = LocalExecutor(parallelism=parallelism, settings=settings)
        else:
            ex = SequentialExecutor(settings=settings)
        return Scheduler(settings, executor=ex, metastore=self.metastore)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A configured home on SQLite, then on PostgreSQL."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Env(zonda_home, url, monkeypatch) as setup:
        yield setup


@pytest.fixture
def sqlite_env(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with Env(zonda_home, None, monkeypatch) as setup:
        yield setup


CHAIN = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("chain5", schedule=None, start_date=datetime(2024, 1, 1)):
    previous = None
    for i in range(5):
        op = PythonOperator(task_id=f"t{i}", python_callable=work)
        if previous is not None:
            previous >> op
        previous = op
"""

FAN_OUT = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("fan_out", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=work)
    last = PythonOperator(task_id="last", python_callable=work)
    for i in range(10):
        first >> PythonOperator(task_id=f"mid{i}", python_callable=work) >> last
"""


def test_chain_and_fan_out_succeed_with_local_executor(env: Env) -> None:
    env.dag("chain.py", CHAIN)
    env.dag("fan_out.py", FAN_OUT)
    env.store()
    chain, fan = env.trigger("chain5"), env.trigger("fan_out")
    states = h.drive(env.scheduler(parallelism=4), [chain, fan], timeout=30)
    assert states == {chain: "success", fan: "success"}
    for run_id in (chain, fan):
        rows = h.task_instances(env.engine, run_id)
        assert {(r.state, r.try_number) for r in rows} == {("success", 1)}
    entries = env.entries()
    assert not h.duplicates(entries, "end")
    by_task = {e.task_id: e for e in entries}
    assert len(entries) == 5 + 12
    chain_order = [e.task_id for e in sorted((e for e in entries if e.task_id.startswith("t")), key=lambda e: e.at)]
    assert chain_order == ["t0", "t1", "t2", "t3", "t4"]
    first, last = by_task["first"], by_task["last"]
    mids = [e for e in entries if e.task_id.startswith("mid")]
    assert len(mids) == 10 and all(first.at < m.at < last.at for m in mids)


TRIGGER_RULES = """
from datetime import datetime
from zonda import DAG
from zonda.operators import BranchPythonOperator, EmptyOperator, PythonOperator


def work(**context):
    record(context)


def boom(**context):
    record(context)
    raise RuntimeError("boom")


with DAG("rules", schedule=None, start_date=datetime(2024, 1, 1)):
    fails = PythonOperator(task_id="fails", python_callable=boom)
    after = PythonOperator(task_id="after", python_callable=work)
    after_after = PythonOperator(task_id="after_after", python_callable=work)
    cleanup = PythonOperator(task_id="cleanup", python_callable=work, trigger_rule="all_done")
    fails >> after >> after_after
    fails >> cleanup


with DAG("rules_ok_leaf", schedule=None, start_date=datetime(2024, 1, 1)):
    # The failing task is not a leaf and the only leaf succeeds: Airflow calls the run a success.
    fails = PythonOperator(task_id="fails", python_callable=boom)
    cleanup = PythonOperator(task_id="cleanup", python_callable=work, trigger_rule="all_done")
    fails >> cleanup


with DAG("branching", schedule=None, start_date=datetime(2024, 1, 1)):
    pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "left")
    left = PythonOperator(task_id="left", python_callable=work)
    right = PythonOperator(task_id="right", python_callable=work)
    right_next = PythonOperator(task_id="right_next", python_callable=work)
    join = PythonOperator(task_id="join", python_callable=work, trigger_rule="none_failed_min_one_success")
    strict_join = EmptyOperator(task_id="strict_join")
    pick >> [left, right]
    right >> right_next
    [left, right_next] >> join
    [left, right_next] >> strict_join
"""


def test_trigger_rules_and_branching_under_the_scheduler(env: Env) -> None:
    env.dag("rules.py", TRIGGER_RULES)
    env.store()
    rules, ok_leaf, branching = env.trigger("rules"), env.trigger("rules_ok_leaf"), env.trigger("branching")
    states = h.drive(env.scheduler(parallelism=4), [rules, ok_leaf, branching], timeout=30)
    assert states == {rules: "failed", ok_leaf: "success", branching: "success"}
    assert h.states_by_task(env.engine, rules) == {
        "fails": "failed",
        "after": "upstream_failed",
        "after_after": "upstream_failed",
        "cleanup": "success",
    }
    assert h.states_by_task(env.engine, ok_leaf) == {"fails": "failed", "cleanup": "success"}
    assert h.states_by_task(env.engine, branching) == {
        "pick": "success",
        "left": "success",
        "right": "skipped",
        "right_next": "skipped",
        "join": "success",
        "strict_join": "skipped",  # all_success with a skipped upstream: skipped, as in Airflow
    }
    ran = {(e.run_id, e.task_id) for e in env.entries()}
    assert not any(task in {"after", "after_after", "right", "right_next"} for _, task in ran)


RETRIES = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import PythonOperator


def flaky(**context):
    record(context)
    if context["ti"].try_number == 1:
        raise RuntimeError("first try fails")


with DAG("retrying", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="flaky", python_callable=flaky, retries=2, retry_delay=timedelta(seconds=1))
"""


def test_retry_after_retry_delay(env: Env) -> None:
    env.dag("retrying.py", RETRIES)
    env.store()
    run = env.trigger("retrying")
    seen: list[Any] = []

    def watch() -> None:
        for row in h.task_instances(env.engine, run):
            if row.state == "up_for_retry" and not seen:
                seen.append(row)

    assert h.drive(env.scheduler(parallelism=2), [run], timeout=30, on_pass=watch) == {run: "success"}
    (row,) = h.task_instances(env.engine, run)
    assert (row.state, row.try_number, row.max_tries) == ("success", 2, 2)
    assert seen, "the instance was never seen up_for_retry"
    waiting = seen[0]
    assert waiting.ready_at is not None and waiting.end_date is not None
    assert abs((waiting.ready_at - waiting.end_date).total_seconds() - 1.0) < 0.05
    tries = sorted(env.entries(), key=lambda e: e.at)
    assert [e.try_number for e in tries] == [1, 2]
    assert tries[1].at - tries[0].at >= 1.0, "the retry ran before its retry_delay"
    assert row.start_date >= waiting.ready_at


MAPPED = """
from datetime import datetime
from zonda import DAG, task


@task
def make(**context):
    record(context)
    return [1, 2, 3]


@task
def double(x, **context):
    record(context)
    return 2 * x


@task
def total(values, **context):
    record(context)
    return sum(values)


with DAG("mapped", schedule=None, start_date=datetime(2024, 1, 1)):
    total(double.expand(x=make()))
"""


def test_mapped_task_expands_from_upstream_xcom(env: Env) -> None:
    from sqlalchemy import select

    from zonda import serde
    from zonda.metastore import tables as t

    env.dag("mapped.py", MAPPED)
    env.store()
    run = env.trigger("mapped")
    assert h.drive(env.scheduler(parallelism=4), [run], timeout=30) == {run: "success"}
    assert h.states_by_task(env.engine, run) == {
        "make": "success",
        "double[0]": "success",
        "double[1]": "success",
        "double[2]": "success",
        "total": "success",
    }
    assert sorted(e.map_index for e in env.entries() if e.task_id == "double") == [0, 1, 2]
    with env.engine.connect() as conn:
        value = conn.execute(
            select(t.xcom.c.value).where(t.xcom.c.dag_run_id == run, t.xcom.c.task_id == "total")
        ).scalar_one()
    assert serde.loads(value) == 12


LIMITS = """
import time
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context, "start")
    time.sleep(0.3)
    record(context)


with DAG("limited", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=2):
    for i in range(6):
        PythonOperator(task_id=f"l{i}", python_callable=work)

with DAG("pooled", schedule=None, start_date=datetime(2024, 1, 1)):
    for i in range(6):
        PythonOperator(task_id=f"p{i}", python_callable=work, pool="two_slots")
"""


def test_max_active_tasks_and_pool_are_never_exceeded(env: Env) -> None:
    env.dag("limits.py", LIMITS)
    env.store()
    h.create_pool(env.engine, "two_slots", 2)
    runs = [env.trigger("limited"), env.trigger("pooled")]
    sampler = h.Sampler(env.url, 0.02)
    states = h.drive(env.scheduler(parallelism=8), runs, timeout=30, sampler=sampler)
    assert set(states.values()) == {"success"}
    assert len(sampler.samples) > 20
    assert sampler.max_dag("limited") == 2  # reached, never exceeded
    assert sampler.max_pool("two_slots") == 2
    assert sampler.max_total() <= 4
    assert len([e for e in env.entries() if e.event == "end"]) == 12


PARALLEL = """
import time
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    time.sleep(0.3)
    record(context)


with DAG("wide", schedule=None, start_date=datetime(2024, 1, 1)):
    for i in range(9):
        PythonOperator(task_id=f"w{i}", python_callable=work)
"""


def test_core_parallelism_is_respected(env: Env) -> None:
    env.dag("wide.py", PARALLEL)
    env.store()
    run = env.trigger("wide")
    # The executor could run 6 at once; core.parallelism allows 3.
    scheduler = env.scheduler(parallelism=6, overrides={("core", "parallelism"): 3})
    sampler = h.Sampler(env.url, 0.02)
    assert h.drive(scheduler, [run], timeout=30, sampler=sampler) == {run: "success"}
    assert sampler.max_total() == 3
    assert len(env.entries()) == 9


PRIORITY = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("priorities", schedule=None, start_date=datetime(2024, 1, 1)):
    for name, weight in [("w3", 3), ("w1", 1), ("w5", 5), ("w2", 2), ("w4", 4)]:
        PythonOperator(task_id=name, python_callable=work, priority_weight=weight)
"""


def test_priority_weight_orders_queueing_with_parallelism_one(sqlite_env: Env) -> None:
    env = sqlite_env
    env.dag("priorities.py", PRIORITY)
    env.store()
    run = env.trigger("priorities")
    assert h.drive(env.scheduler("sequential"), [run], timeout=30) == {run: "success"}
    order = [e.task_id for e in sorted(env.entries(), key=lambda e: e.at)]
    assert order == ["w5", "w4", "w3", "w2", "w1"]


SCHEDULED = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("every_minute_catchup", schedule=timedelta(minutes=1), start_date=datetime.fromisoformat({start!r}), catchup=True):
    EmptyOperator(task_id="noop")

with DAG("every_minute_latest", schedule=timedelta(minutes=1), start_date=datetime.fromisoformat({start!r}), catchup=False):
    EmptyOperator(task_id="noop")

with DAG("cron_catchup", schedule="* * * * *", start_date=datetime.fromisoformat({cron_start!r}), catchup=True):
    EmptyOperator(task_id="noop")
"""


def _run_briefly(scheduler: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    scheduler.start()
    try:
        while time.monotonic() < deadline:
            scheduler.run_once()
    finally:
        scheduler.shutdown()


def test_scheduled_runs_with_and_without_catchup(sqlite_env: Env) -> None:
    env = sqlite_env
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=3, seconds=10)).replace(microsecond=0)
    cron_start = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
    env.dag("scheduled.py", SCHEDULED.format(start=start.isoformat(), cron_start=cron_start.isoformat()))
    env.store()
    scheduler = env.scheduler("sequential")
    scheduler.start()
    try:
        before = datetime.now(UTC)
        scheduler.run_once()  # the first pass creates every due run
        after = datetime.now(UTC)
        catchup = h.dag_runs(env.engine, "every_minute_catchup")
        latest = h.dag_runs(env.engine, "every_minute_latest")
        cron = h.dag_runs(env.engine, "cron_catchup")
        ids = [r.id for r in (*catchup, *latest, *cron)]
        h.drive(scheduler, ids, timeout=30, start=False)
    except BaseException:
        scheduler.shutdown()
        raise
    # A timedelta schedule fires at start_date and every delta after it, each run dated by when it fires with an
    # empty data interval (Airflow 3's DeltaTriggerTimetable): start, +1, +2, +3 minutes.
    assert [(r.data_interval_start, r.data_interval_end) for r in catchup] == [
        (start + timedelta(minutes=i), start + timedelta(minutes=i)) for i in range(4)
    ]
    assert all(r.run_type == "scheduled" and r.logical_date == r.data_interval_start for r in catchup)
    # catchup=False: one run, fired "now" (Airflow's DeltaTriggerTimetable takes now as the latest point), not on
    # the start_date's grid.
    (only,) = latest
    assert only.data_interval_end == only.data_interval_start == only.logical_date
    assert start + timedelta(minutes=3) <= only.data_interval_end <= datetime.now(UTC)
    # A cron string is a trigger schedule (Airflow 3): a run fires at every whole minute from cron_start on, the
    # first at cron_start itself, so three minutes later there are four runs (five if a minute turned since the
    # file was written), each dated by its minute with an empty data interval.
    due = {
        int((moment.replace(second=0, microsecond=0) - cron_start).total_seconds() // 60) + 1
        for moment in (now, before, after)
    }
    assert len(cron) in due
    assert [r.data_interval_start for r in cron] == [cron_start + timedelta(minutes=i) for i in range(len(cron))]
    assert all(r.logical_date == r.data_interval_start == r.data_interval_end for r in cron)
    assert {r.state for r in h.dag_runs(env.engine, "every_minute_catchup")} == {"success"}
    # The next run is announced in the dag row.
    from sqlalchemy import select

    from zonda.metastore import tables as t

    with env.engine.connect() as conn:
        nxt = conn.execute(select(t.dag.c.next_dagrun).where(t.dag.c.dag_id == "every_minute_catchup")).scalar()
    assert nxt == start + timedelta(minutes=4)


PAUSED = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG(
    "paused_dag",
    schedule=timedelta(minutes=1),
    start_date=datetime.fromisoformat({start!r}),
    catchup=True,
    is_paused_upon_creation=True,
):
    PythonOperator(task_id="work", python_callable=work)
"""


def test_paused_dag_creates_no_runs(sqlite_env: Env) -> None:
    env = sqlite_env
    start = (datetime.now(UTC) - timedelta(minutes=3, seconds=10)).replace(microsecond=0)
    env.dag("paused.py", PAUSED.format(start=start.isoformat()))
    env.store()
    _run_briefly(env.scheduler("sequential"), 1.5)  # the first pass creates due runs
    assert h.dag_runs(env.engine, "paused_dag") == []
    assert env.entries() == []
    # Unpaused, its intervals are caught up.
    h.set_paused(env.engine, "paused_dag", False)
    scheduler = env.scheduler("sequential")
    scheduler.start()
    try:
        scheduler.run_once()
        ids = [r.id for r in h.dag_runs(env.engine, "paused_dag")]
        # A timedelta schedule fires at start_date and every minute after (Airflow 3's DeltaTriggerTimetable):
        # start, +1, +2 and +3 minutes have all come.
        assert len(ids) == 4
        h.drive(scheduler, ids, timeout=30, start=False)
    except BaseException:
        scheduler.shutdown()
        raise
    assert len(env.entries()) == 4


PAUSED_MANUAL = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("paused_manual", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=True):
    PythonOperator(task_id="work", python_callable=work)
"""


def test_triggered_run_of_a_paused_dag_waits_until_unpaused(sqlite_env: Env) -> None:
    env = sqlite_env
    env.dag("paused_manual.py", PAUSED_MANUAL)
    env.store()
    run = env.trigger("paused_manual")
    _run_briefly(env.scheduler("sequential"), 1.5)
    assert h.run_states(env.engine, [run]) == {run: "queued"}  # as in Airflow: it waits for the unpause
    assert env.entries() == []
    h.set_paused(env.engine, "paused_manual", False)
    assert h.drive(env.scheduler("sequential"), [run], timeout=30) == {run: "success"}
    assert len(env.entries()) == 1


PARAMS = """
from datetime import datetime
from zonda import DAG, Param
from zonda.operators import PythonOperator


def echo(params, **context):
    record(context)
    return params["n"]


with DAG("with_params", schedule=None, start_date=datetime(2024, 1, 1), params={"n": Param(3, type="integer", minimum=1)}):
    PythonOperator(task_id="echo", python_callable=echo)
"""


def test_trigger_dag_validates_conf_and_the_task_sees_it(sqlite_env: Env) -> None:
    from sqlalchemy import select

    from zonda import serde
    from zonda.exceptions import DagNotFound
    from zonda.metastore import tables as t
    from zonda.scheduler.runs import trigger_dag

    env = sqlite_env
    env.dag("params.py", PARAMS)
    env.store()
    with pytest.raises(ParamValidationError, match="with_params"):
        trigger_dag(env.engine, "with_params", conf={"n": 0})
    with pytest.raises(ParamValidationError):
        trigger_dag(env.engine, "with_params", conf={"n": "many"})
    with pytest.raises(DagNotFound):
        trigger_dag(env.engine, "no_such_dag")
    assert h.dag_runs(env.engine, "with_params") == []
    run = env.trigger("with_params", conf={"n": 5}, run_id="five")
    with pytest.raises(ZondaException, match="already has a run"):
        env.trigger("with_params", run_id="five")
    assert h.drive(env.scheduler("sequential"), [run], timeout=30) == {run: "success"}
    with env.engine.connect() as conn:
        value = conn.execute(select(t.xcom.c.value).where(t.xcom.c.dag_run_id == run)).scalar_one()
    assert serde.loads(value) == 5


def test_second_scheduler_on_sqlite_refuses_to_start(sqlite_env: Env) -> None:
    env = sqlite_env
    first = env.scheduler("sequential")
    first.start()
    try:
        second = env.scheduler("sequential")
        with pytest.raises(ZondaException, match=r"another scheduler .*SQLite") as info:
            second.start()
        assert f"job {first.job_id}" in str(info.value) and "PostgreSQL" in str(info.value)
        assert not second.executor._workers  # its workers were stopped again
    finally:
        first.shutdown()
    # Once the first one has stopped, a new one starts.
    third = env.scheduler("sequential")
    third.start()
    third.shutdown()


GRACEFUL = """
import time
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def slow(**context):
    record(context, "start")
    time.sleep(1.5)
    record(context)


def work(**context):
    record(context)


with DAG("graceful", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="slow", python_callable=slow) >> PythonOperator(task_id="next", python_callable=work)
"""


def test_graceful_stop_finishes_running_tasks_and_a_restart_resumes(sqlite_env: Env) -> None:
    env = sqlite_env
    env.dag("graceful.py", GRACEFUL)
    env.store()
    run = env.trigger("graceful")
    scheduler = env.scheduler(parallelism=2)
    stopped_at: list[float] = []

    def stop_when_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(e.event == "start" for e in env.entries()):
                break
            time.sleep(0.02)
        stopped_at.append(time.time())
        scheduler.stop.set()  # what SIGTERM does

    stopper = threading.Thread(target=stop_when_running, daemon=True)
    stopper.start()
    try:
        scheduler.run()  # returns once stopped, after the running task ended
    finally:
        scheduler.stop.set()
        stopper.join(25)
    states = h.states_by_task(env.engine, run)
    assert states["slow"] == "success"
    assert states["next"] != "success"
    end = next(e for e in env.entries() if e.task_id == "slow" and e.event == "end")
    assert end.at > stopped_at[0]  # it was running when the stop came, and was let finish
    # A restarted scheduler resumes the run.
    assert h.drive(env.scheduler(parallelism=2), [run], timeout=30) == {run: "success"}
    assert [e.task_id for e in env.entries() if e.event == "end"] == ["slow", "next"]


KILLS_ITSELF = """
import os
import signal
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import PythonOperator


def dies_once(**context):
    record(context, "start")
    if context["ti"].try_number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    record(context)


with DAG("dies_once", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="dies", python_callable=dies_once, retries=1, retry_delay=timedelta(seconds=0))
"""


def test_task_process_killed_is_retried(env: Env) -> None:
    env.dag("dies.py", KILLS_ITSELF)
    env.store()
    run = env.trigger("dies_once")
    assert h.drive(env.scheduler(parallelism=2), [run], timeout=30) == {run: "success"}
    (row,) = h.task_instances(env.engine, run)
    assert (row.state, row.try_number) == ("success", 2)
    assert [(e.try_number, e.event) for e in sorted(env.entries(), key=lambda e: e.at)] == [
        (1, "start"),
        (2, "start"),
        (2, "end"),
    ]


def test_settings_overrides_reach_the_executor_workers(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.config import load_settings
    from zonda.executors.local import LocalExecutor
    from zonda.metastore.db import Metastore
    from zonda.scheduler.scheduler import Scheduler

    (zonda_home / "dags").mkdir()
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    ledger = zonda_home / "ledger.txt"
    h.write_dag(zonda_home, "chain.py", CHAIN, ledger=ledger)
    other = zonda_home / "elsewhere.db"
    overrides = {("database", "sql_alchemy_conn"): f"sqlite:///{other}", ("core", "dags_are_paused_at_creation"): False}
    settings = load_settings(zonda_home).with_overrides(overrides)
    metastore = Metastore.from_settings(settings)
    metastore.init()
    try:
        h.store_dags(settings, metastore)
        from zonda.scheduler.runs import trigger_dag

        run = int(trigger_dag(metastore.engine, "chain5")["id"])
        scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=2, settings=settings), metastore=metastore)
        assert h.drive(scheduler, [run], timeout=20) == {run: "success"}
    finally:
        metastore.dispose()


class _DeadExecutor:
    """Stands for a scheduler process that died right after queueing: nothing it was handed ever runs."""

    parallelism = 4
    open_slots = 4

    def start(self) -> None:
        pass

    def queue(self, workload: Any) -> None:
        pass

    def poll(self, timeout: float) -> list[Any]:
        time.sleep(min(timeout, 0.05))
        return []

    def end(self, timeout: float = 30.0) -> None:
        pass

    def terminate(self) -> None:
        pass


@pytest.mark.postgres
def test_instances_queued_by_a_dead_scheduler_are_rescheduled(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    from zonda.scheduler.scheduler import Scheduler

    options = {("scheduler", "task_heartbeat_timeout"): 2, ("scheduler", "scheduler_heartbeat_timeout"): 2}
    with Env(zonda_home, postgres_url, monkeypatch, options) as env:
        env.dag("chain.py", CHAIN)
        env.store()
        run = env.trigger("chain5")
        dead = Scheduler(env.settings, executor=_DeadExecutor(), metastore=env.metastore)  # type: ignore[arg-type]
        dead.start()
        for _ in range(3):
            dead.run_once()
        assert h.states_by_task(env.engine, run)["t0"] == "queued"
        # "kill -9": no shutdown, its job row keeps a fresh heartbeat; a new scheduler starts at once.
        assert h.drive(env.scheduler(parallelism=2), [run], timeout=6) == {run: "success"}


RESCHEDULING = """
from datetime import datetime
from pathlib import Path
from zonda import DAG
from zonda.operators import PythonOperator
from zonda.sensors import PythonSensor

POKES = Path(__file__).with_name("pokes.txt")


def ready(**context):
    with POKES.open("a") as fh:
        fh.write("poke\\n")
    return len(POKES.read_text().splitlines()) >= 3


with DAG("rescheduling", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonSensor(task_id="wait", python_callable=ready, mode="reschedule", poke_interval=0.3, timeout=30)
    # With one slot, this runs while the sensor is rescheduled: the sensor does not hold the slot.
    PythonOperator(task_id="meanwhile", python_callable=lambda: None)
"""


def test_reschedule_mode_sensor_frees_its_slot(env: Env) -> None:
    env.dag("rescheduling.py", RESCHEDULING)
    env.store()
    run = env.trigger("rescheduling")
    seen: set[str] = set()

    def watch() -> None:
        for row in h.task_instances(env.engine, run):
            if row.task_id == "wait" and row.state:
                seen.add(row.state)

    assert h.drive(env.scheduler(parallelism=1), [run], timeout=30, on_pass=watch) == {run: "success"}
    rows = {row.task_id: row for row in h.task_instances(env.engine, run)}
    assert rows["wait"].state == "success" and rows["wait"].try_number == 1  # rescheduling is not a retry
    assert "up_for_reschedule" in seen
    pokes = (env.home / "dags" / "pokes.txt").read_text().splitlines()
    assert len(pokes) == 3
    assert rows["meanwhile"].end_date < rows["wait"].end_date  # it ran in the slot the sensor gave back


DEFER_CUSTOM = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import BaseOperator
from zonda.triggers.temporal import TimeDeltaTrigger


class Sleepy(BaseOperator):
    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=0.5)), method_name="done", kwargs={"n": 7})

    def done(self, context, event=None, n=0):
        return {"n": n, "event": str(event)}


with DAG("defer_custom", schedule=None, start_date=datetime(2024, 1, 1)):
    Sleepy(task_id="sleepy")
"""


def test_deferred_task_resumes_through_the_triggerer(env: Env) -> None:
    import threading

    from zonda.triggerer import Triggerer

    env.dag("defer_custom.py", DEFER_CUSTOM)
    env.store()
    run = env.trigger("defer_custom")
    stop = threading.Event()
    threads: list[threading.Thread] = []
    seen: set[str] = set()

    def on_pass() -> None:
        if not threads:  # after the scheduler forked its workers
            triggerer = Triggerer(env.settings, env.metastore)
            thread = threading.Thread(target=triggerer.run, args=(stop,), daemon=True)
            thread.start()
            threads.append(thread)
        for row in h.task_instances(env.engine, run):
            if row.state:
                seen.add(row.state)

    try:
        assert h.drive(env.scheduler(parallelism=2), [run], timeout=30, on_pass=on_pass) == {run: "success"}
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    (row,) = h.task_instances(env.engine, run)
    assert (row.state, row.try_number) == ("success", 1)
    assert "deferred" in seen
    from sqlalchemy import func, select

    from zonda.metastore import tables as t

    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.trigger)).scalar() == 0
        value = conn.execute(select(t.xcom.c.value).where(t.xcom.c.task_id == "sleepy")).scalar()
    assert '"n":7' in value


REUSE = """
import os
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    # What the previous task left behind must not be here; then leave some of it for the next one.
    assert "ZONDA_TEST_LEFTOVER" not in os.environ, "an environment variable leaked from the previous task"
    assert not os.getcwd().startswith("/tmp/zonda-leftover"), "the working folder leaked"
    record(context)
    os.environ["ZONDA_TEST_LEFTOVER"] = context["ti"].task_id
    os.makedirs("/tmp/zonda-leftover", exist_ok=True)
    os.chdir("/tmp/zonda-leftover")


with DAG("reuse", schedule=None, start_date=datetime(2024, 1, 1)):
    previous = None
    for i in range(7):
        op = PythonOperator(task_id=f"t{i}", python_callable=work)
        if previous is not None:
            previous >> op
        previous = op
"""


@pytest.mark.parametrize("per_process", [1, 3])
def test_task_processes_run_at_most_tasks_per_process_and_start_clean(sqlite_env: Env, per_process: int) -> None:
    env = sqlite_env
    env.dag("reuse.py", REUSE)
    env.store()
    run = env.trigger("reuse")
    scheduler = env.scheduler(parallelism=1, overrides={("local_executor", "tasks_per_process"): per_process})
    assert h.drive(scheduler, [run], timeout=30) == {run: "success"}
    entries = sorted(env.entries(), key=lambda e: e.at)
    assert [e.task_id for e in entries] == [f"t{i}" for i in range(7)]
    per_pid = Counter(e.pid for e in entries)
    assert max(per_pid.values()) == per_process  # one worker: its task process is reused up to the limit
    assert len(per_pid) == -(-7 // per_process)  # then a fresh one is forked


ONE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("one", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="only", python_callable=work)
"""


def test_an_idle_task_process_stops_quietly_on_sigterm_and_the_worker_forks_a_new_one(
    sqlite_env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    """Between workloads a kept task process has nothing to stop: a SIGTERM (the installation stopping, sent to
    the whole process group) ends it without an error report, and the next workload gets a fresh process."""
    import logging
    import os
    import signal

    env = sqlite_env
    env.dag("one.py", ONE)
    env.store()
    scheduler = env.scheduler(parallelism=1)
    first = env.trigger("one")
    # What the task process reports goes to its stderr (fd 2, which capfd reads), as under `zonda scheduler`.
    report = logging.StreamHandler(sys.stderr)
    supervisor_log = logging.getLogger("zonda.executors.supervisor")
    supervisor_log.addHandler(report)
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while h.run_states(env.engine, [first]).get(first) != "success" and time.monotonic() < deadline:
            scheduler.run_once()
        assert h.run_states(env.engine, [first]) == {first: "success"}
        (idle,) = scheduler.executor._task_pids.values()
        os.kill(idle, signal.SIGTERM)
        h.wait_for(lambda: _gone_or_zombie(idle), 10, what="the idle task process to exit")
        second = env.trigger("one")
        deadline = time.monotonic() + 30
        while h.run_states(env.engine, [second]).get(second) != "success" and time.monotonic() < deadline:
            scheduler.run_once()
        assert h.run_states(env.engine, [second]) == {second: "success"}
    finally:
        scheduler.shutdown()
        supervisor_log.removeHandler(report)
    pids = [e.pid for e in sorted(env.entries(), key=lambda e: e.at)]
    assert pids[0] == idle and pids[1] != idle
    err = capfd.readouterr().err
    assert "ZondaTaskTerminated" not in err and "task process for" not in err


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


SHAPES = """
from datetime import datetime
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("shapes", schedule=None, start_date=datetime(2024, 1, 1)):
    first = EmptyOperator(task_id="first")
    mids = [EmptyOperator(task_id=f"mid{i}") for i in range(3)]
    join = EmptyOperator(task_id="join")
    eager = EmptyOperator(task_id="eager", trigger_rule="one_success")
    leaf = EmptyOperator(task_id="leaf")
    first >> mids >> join
    mids[0] >> eager
"""


def test_ended_instances_that_change_nothing_are_recognised(sqlite_env: Env) -> None:
    """The shortcut that spares re-reading a whole run after each task end: every case that could make a task
    decidable (a last upstream, a failure, an eager trigger rule, the run's end) must say "decide"."""
    from sqlalchemy import select, update

    from zonda.metastore import tables as t
    from zonda.scheduler.decisions import ended_tasks_change_nothing
    from zonda.scheduler.scheduler import Scheduler
    from zonda.timezone import utcnow

    env = sqlite_env
    env.dag("shapes.py", SHAPES)
    env.store()
    run = env.trigger("shapes")
    scheduler = Scheduler(env.settings, executor=None, metastore=env.metastore)
    scheduler._start_queued_runs()
    scheduler._decide_one(run, utcnow())
    ti = t.task_instance
    with env.engine.begin() as conn:
        ids = dict(conn.execute(select(ti.c.task_id, ti.c.id).where(ti.c.dag_run_id == run)).all())
        sdag = scheduler.serialized(conn, "shapes")

    def states(**values: str | None) -> None:
        with env.engine.begin() as conn:
            for task_id, state in values.items():
                conn.execute(update(ti).where(ti.c.id == ids[task_id]).values(state=state))

    def nothing(*task_ids: str) -> bool:
        with env.engine.connect() as conn:
            return ended_tasks_change_nothing(conn, sdag, run, {ids[tid]: tid for tid in task_ids})

    states(first="success", mid0="running", mid1="running", mid2="running", leaf="running")
    assert not nothing("first")  # its downstream mids are now decidable
    states(mid1="success")
    assert nothing("mid1")  # join still waits for mid0 and mid2
    states(mid1="failed")
    assert not nothing("mid1")  # a failure settles join (upstream_failed) at once
    states(mid1="success", mid0="success")
    assert not nothing("mid0")  # eager (one_success) may run now
    states(mid2="success")
    assert not nothing("mid2")  # the last upstream of join
    states(leaf="success")
    assert nothing("leaf")  # a leaf: the run still has join and eager to do
    states(join="success", eager="success")
    assert not nothing("leaf")  # nothing unfinished: the run may be complete
