"""LatestOnlyOperator, BranchDayOfWeekOperator, BranchDateTimeOperator, DateTimeSensor, TimeSensor and
BashSensor: the final task states Airflow's documentation gives for each, from real runs.

Deferrable sensors go through the real path: a workload attempt defers into the metastore, the triggerer
fires the stored DateTimeTrigger, and the resumed attempt ends the same try.
"""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from zonda import DAG
from zonda.exceptions import DagDefinitionError
from zonda.executors.base import Workload
from zonda.executors.workload import WorkloadRunner
from zonda.metastore import tables as t
from zonda.operators import (
    BranchDateTimeOperator,
    BranchDayOfWeekOperator,
    EmptyOperator,
    LatestOnlyOperator,
    WeekDay,
)
from zonda.runner.store import DagRunInfo, MetastoreRunStore
from zonda.sensors import BashSensor, DateTimeSensor, TimeSensor
from zonda.testing import run_dag
from zonda.timetables import CronTriggerTimetable
from zonda.trigger_rule import TriggerRule
from zonda.triggerer import Triggerer

START = datetime(2024, 1, 1, tzinfo=UTC)


# --- LatestOnlyOperator -----------------------------------------------------------------------------------


def _latest_only_dag(schedule: Any) -> DAG:
    """Airflow's example_latest_only_with_trigger shape: task1 follows latest_only; task3 has all_done."""
    with DAG("latest_only", start_date=START, schedule=schedule, catchup=True) as dag:
        latest = LatestOnlyOperator(task_id="latest_only")
        task1 = EmptyOperator(task_id="task1")
        task2 = EmptyOperator(task_id="task2")
        task3 = EmptyOperator(task_id="task3")
        task4 = EmptyOperator(task_id="task4", trigger_rule=TriggerRule.ALL_DONE)
        latest >> task1 >> [task3, task4]
        task2 >> [task3, task4]
    return dag


def _scheduled_run(dag: DAG, logical: datetime, zonda_metastore: Any) -> dict[str, str]:
    """Run ``dag`` once as a scheduled run of the interval starting at ``logical``."""
    from zonda.config import load_settings
    from zonda.runner.dag_runner import InProcessDagRunner

    settings = load_settings()
    runner = InProcessDagRunner(
        dag, MetastoreRunStore(zonda_metastore), settings=settings, log_folder=settings.log_folder
    )
    interval = dag.timetable.infer_data_interval(logical)
    result = runner.run(logical, run_type="scheduled")
    assert result.run.data_interval_end == interval.end
    return result.states()


def test_latest_only_skips_an_old_scheduled_run_and_lets_the_latest_one_through(zonda_home, zonda_metastore) -> None:
    now = datetime.now(UTC)
    dag = _latest_only_dag("@daily")
    old = _scheduled_run(dag, START, zonda_metastore)
    # As Airflow documents: the old run skips task1 and task3 (its all_success rule sees a skip); task4's
    # all_done rule still runs it.
    assert old == {
        "latest_only": "success",
        "task1": "skipped",
        "task2": "success",
        "task3": "skipped",
        "task4": "success",
    }
    # The run of the latest trigger time (midnight today, a trigger schedule) is the latest.
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    latest = _scheduled_run(dag, today, zonda_metastore)
    assert set(latest.values()) == {"success"}


def test_latest_only_with_data_intervals_and_manual_runs(zonda_home, zonda_metastore) -> None:
    from zonda.schedule import CronDataIntervalTimetable

    now = datetime.now(UTC)
    dag = _latest_only_dag(CronDataIntervalTimetable("@daily"))
    yesterday = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    # Yesterday's interval ended at midnight: its run is the current one.
    assert set(_scheduled_run(dag, yesterday, zonda_metastore).values()) == {"success"}
    assert _scheduled_run(dag, yesterday - timedelta(days=3), zonda_metastore)["task1"] == "skipped"
    # A manual run (here `dags test`) is never skipped, whatever its date.
    assert set(run_dag(dag, START).states().values()) == {"success"}


# --- BranchDayOfWeekOperator / BranchDateTimeOperator ------------------------------------------------------


def _branch_dag(make_branch: Any) -> DAG:
    with DAG("branching", start_date=START, schedule=None) as dag:
        branch = make_branch()
        branch >> [EmptyOperator(task_id="yes"), EmptyOperator(task_id="no")]
    return dag


@pytest.mark.parametrize(
    ("week_day", "logical", "followed"),
    [
        ("Monday", datetime(2024, 1, 1, tzinfo=UTC), "yes"),  # 1 January 2024 was a Monday
        ("monday", datetime(2024, 1, 2, tzinfo=UTC), "no"),
        ({WeekDay.SATURDAY, WeekDay.SUNDAY}, datetime(2024, 1, 6, tzinfo=UTC), "yes"),
        (["Saturday", "Sunday"], datetime(2024, 1, 5, tzinfo=UTC), "no"),
        (WeekDay.TUESDAY, datetime(2024, 1, 2, 23, 59, tzinfo=UTC), "yes"),
    ],
)
def test_branch_day_of_week_by_logical_date(zonda_home, week_day: Any, logical: datetime, followed: str) -> None:
    dag = _branch_dag(
        lambda: BranchDayOfWeekOperator(
            task_id="branch",
            week_day=week_day,
            use_task_logical_date=True,
            follow_task_ids_if_true="yes",
            follow_task_ids_if_false="no",
        )
    )
    states = run_dag(dag, logical).states()
    skipped = "no" if followed == "yes" else "yes"
    assert (states[followed], states[skipped]) == ("success", "skipped")


def test_branch_day_of_week_by_today_and_bad_names(zonda_home) -> None:
    today = datetime.now(UTC).strftime("%A")
    dag = _branch_dag(
        lambda: BranchDayOfWeekOperator(
            task_id="branch", week_day=today, follow_task_ids_if_true="yes", follow_task_ids_if_false="no"
        )
    )
    assert run_dag(dag, START).states()["yes"] == "success"
    with pytest.raises(DagDefinitionError, match=r"'Funday' is not a day of the week; use one of Monday"):
        BranchDayOfWeekOperator(
            task_id="bad", week_day="Funday", follow_task_ids_if_true="a", follow_task_ids_if_false="b"
        )


@pytest.mark.parametrize(
    ("lower", "upper", "logical", "followed"),
    [
        (datetime(2024, 1, 1, 6), datetime(2024, 1, 1, 18), datetime(2024, 1, 1, 12, tzinfo=UTC), "yes"),
        (datetime(2024, 1, 1, 6), datetime(2024, 1, 1, 18), datetime(2024, 1, 1, 19, tzinfo=UTC), "no"),
        (datetime(2024, 1, 1, 6).time(), None, datetime(2024, 1, 1, 5, tzinfo=UTC), "no"),
        (None, datetime(2024, 1, 1, 6).time(), datetime(2024, 1, 1, 5, tzinfo=UTC), "yes"),
        # 22:00 to 02:00 spans midnight: the upper bound is the next day.
        (datetime(2024, 1, 1, 22).time(), datetime(2024, 1, 1, 2).time(), datetime(2024, 1, 1, 23, tzinfo=UTC), "yes"),
        (datetime(2024, 1, 1, 22).time(), datetime(2024, 1, 1, 2).time(), datetime(2024, 1, 1, 21, tzinfo=UTC), "no"),
    ],
)
def test_branch_date_time_by_logical_date(zonda_home, lower: Any, upper: Any, logical: datetime, followed: str) -> None:
    dag = _branch_dag(
        lambda: BranchDateTimeOperator(
            task_id="branch",
            target_lower=lower,
            target_upper=upper,
            use_task_logical_date=True,
            follow_task_ids_if_true=["yes"],
            follow_task_ids_if_false=["no"],
        )
    )
    states = run_dag(dag, logical).states()
    skipped = "no" if followed == "yes" else "yes"
    assert (states[followed], states[skipped]) == ("success", "skipped")


def test_branch_date_time_needs_a_bound() -> None:
    with pytest.raises(DagDefinitionError, match="both None; give at least one bound"):
        BranchDateTimeOperator(
            task_id="b", target_lower=None, target_upper=None, follow_task_ids_if_true="a", follow_task_ids_if_false="c"
        )


# --- DateTimeSensor / TimeSensor / BashSensor in process ---------------------------------------------------


def test_date_time_sensor_waits_for_a_templated_moment(zonda_home) -> None:
    with DAG("dts", start_date=START, schedule=None) as dag:
        DateTimeSensor(task_id="past", target_time="{{ data_interval_end }}", poke_interval=0.05)
        DateTimeSensor(task_id="soon", target_time=datetime.now(UTC) + timedelta(seconds=0.3), poke_interval=60)
        DateTimeSensor(task_id="never", target_time="2999-01-01T00:00:00", poke_interval=0.05, timeout=0.2)
        DateTimeSensor(
            task_id="never_soft", target_time="2999-01-01T00:00:00", poke_interval=0.05, timeout=0.2, soft_fail=True
        )
    started = time.monotonic()
    states = run_dag(dag, START).states()
    assert states == {"past": "success", "soon": "success", "never": "failed", "never_soft": "skipped"}
    assert time.monotonic() - started < 30


def _noon_zone(now: datetime) -> timezone:
    """A fixed-offset zone where ``now`` is around noon, so times a few hours either side stay on one day."""
    return timezone(timedelta(hours=12 - now.hour))


def test_time_sensor_waits_for_todays_time_of_day(zonda_home) -> None:
    local_now = datetime.now(UTC).astimezone(_noon_zone(datetime.now(UTC)))
    with DAG("ts", start_date=START, schedule=None) as dag:
        # A backfill of an old date still waits for today's time (Airflow's rule): 5 s ago has passed.
        TimeSensor(task_id="passed", target_time=(local_now - timedelta(seconds=5)).timetz(), poke_interval=0.05)
        TimeSensor(
            task_id="later", target_time=(local_now + timedelta(hours=2)).timetz(), poke_interval=0.05, timeout=0.2
        )
    assert run_dag(dag, START).states() == {"passed": "success", "later": "failed"}
    with pytest.raises(DagDefinitionError, match=r"target_time must be a datetime\.time"):
        TimeSensor(task_id="bad", target_time="06:00")


def test_bash_sensor_exit_codes(zonda_home, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    with DAG("bs", start_date=START, schedule=None) as dag:
        BashSensor(task_id="ok", bash_command="echo checking; exit 0", poke_interval=0.05)
        # Data reaches the command through env, never by templating it into the script.
        BashSensor(
            task_id="env_ok", bash_command='test "$DAY" = 2024-01-01', env={"DAY": "{{ ds }}"}, poke_interval=0.05
        )
        BashSensor(
            task_id="waits",
            bash_command=f"if [ -e '{flag}' ]; then exit 0; fi; touch '{flag}'; exit 1",
            poke_interval=0.05,
        )
        BashSensor(task_id="times_out", bash_command="exit 3", poke_interval=0.05, timeout=0.2)
        BashSensor(task_id="retry_code", bash_command="exit 3", retry_exit_code=3, poke_interval=0.05, timeout=0.2)
        BashSensor(task_id="hard_fail", bash_command="exit 4", retry_exit_code=3, poke_interval=0.05, timeout=5)
    result = run_dag(dag, START)
    assert result.states() == {
        "ok": "success",
        "env_ok": "success",
        "waits": "success",
        "times_out": "failed",
        "retry_code": "failed",
        "hard_fail": "failed",
    }
    assert "checking" in Path(result.ti("ok").log_path).read_text()
    log = Path(result.ti("hard_fail").log_path).read_text()
    assert "exited with 4, not 0 (done) or retry_exit_code 3" in log


# --- deferrable: through the triggerer ---------------------------------------------------------------------

DEFER_DAG = """
from datetime import UTC, datetime, timedelta, timezone

from zonda import DAG
from zonda.sensors import DateTimeSensorAsync, TimeSensor

# A zone where it is about noon now, so "two seconds from now" is today there, whatever the hour in UTC.
ZONE = timezone(timedelta(hours=12 - datetime.now(UTC).hour))

with DAG("deferring_time", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)):
    # Airflow's DateTimeSensorAsync is DateTimeSensor(deferrable=True).
    DateTimeSensorAsync(task_id="moment", target_time="{{ dag_run.conf['at'] }}")
    TimeSensor(task_id="clock", target_time=(datetime.now(ZONE) + timedelta(seconds=2)).timetz(), deferrable=True)
"""


def test_deferrable_time_sensors_wait_in_the_triggerer(zonda_home, zonda_settings, zonda_metastore) -> None:
    dag_file = zonda_home / "dags" / "deferring_time.py"
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    dag_file.write_text(textwrap.dedent(DEFER_DAG))
    store = MetastoreRunStore(zonda_metastore)
    now = datetime.now(UTC)
    moment = now + timedelta(seconds=3)
    run = DagRunInfo("deferring_time", "manual__1", now, now, now, conf={"at": moment.isoformat()}, start_date=now)
    store.create_dag_run(run)
    store.create_task_instances(
        run, [{"task_id": tid, "map_index": -1, "try_number": 0} for tid in ("moment", "clock")]
    )
    store.close()
    runner = WorkloadRunner(home=str(zonda_home))
    engine = zonda_metastore.engine

    def row(task_id: str) -> Any:
        with engine.connect() as conn:
            ti = t.task_instance
            return conn.execute(select(ti).where(ti.c.dag_run_id == run.id, ti.c.task_id == task_id)).one()

    def attempt(task_id: str) -> Any:
        current = row(task_id)
        with engine.begin() as conn:
            ti = t.task_instance
            conn.execute(update(ti).where(ti.c.id == current.id).values(state="queued", queued_dttm=datetime.now(UTC)))
        runner.run(
            Workload(
                ti_id=current.id,
                dag_id="deferring_time",
                run_id=run.run_id,
                task_id=task_id,
                map_index=-1,
                try_number=current.try_number + (0 if current.next_method else 1),
                fileloc=str(dag_file),
            )
        )
        return row(task_id)

    assert attempt("moment").state == "deferred"
    assert attempt("clock").state == "deferred"
    with engine.connect() as conn:
        classpaths = {r.classpath for r in conn.execute(select(t.trigger)).all()}
        stored = [r.kwargs for r in conn.execute(select(t.trigger)).all()]
    assert classpaths == {"zonda.triggers.temporal.DateTimeTrigger"}
    assert any(moment.isoformat()[:19] in k for k in stored)  # the rendered target, not the template
    triggerer = Triggerer(zonda_settings, metastore=zonda_metastore, capacity=10)
    try:
        deadline = time.monotonic() + 10
        while not (row("moment").state == "scheduled" and row("clock").state == "scheduled"):
            assert time.monotonic() < deadline, "the triggerer did not fire the date-time triggers"
            triggerer.run_once(timeout=0.2)
    finally:
        triggerer.shutdown()
    assert datetime.now(UTC) >= moment
    for task_id in ("moment", "clock"):
        ended = attempt(task_id)
        assert (ended.state, ended.try_number) == ("success", 1)


def test_cron_trigger_timetable_is_importable_where_airflow_users_look() -> None:
    table = CronTriggerTimetable("0 6 * * *", timezone="Europe/Amsterdam")
    # 06:00 in Amsterdam in winter is 05:00 UTC.
    assert table.next_interval(datetime(2024, 1, 1, tzinfo=UTC)).start == datetime(2024, 1, 1, 5, tzinfo=UTC)
