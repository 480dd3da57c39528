"""Schedules with Airflow 3's meaning: cron strings are trigger schedules unless data intervals are asked for;
CronTriggerTimetable, MultipleCronTriggerTimetable, DeltaTriggerTimetable, EventsTimetable and @continuous.

The expectations are Airflow 3.3's documented behaviour ("Differences between trigger and data interval
timetables", https://airflow.apache.org/docs/apache-airflow/stable/authoring-and-scheduling/timetable.html, and
``[scheduler] create_cron_data_intervals`` / ``create_delta_data_intervals`` in the configuration reference),
and the runs computed here were compared side by side with Airflow 3.3.2's own timetables (installed as a peer,
never a test dependency): a trigger run's logical date is the
time it fires and its data interval is ``[t - interval, t]``; a data-interval run's logical date is the start of
the interval and it fires at the interval's end.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import scheduler_helpers as h

from zonda import DAG
from zonda.exceptions import DagDefinitionError
from zonda.schedule import CronDataIntervalTimetable, DataInterval, parse_schedule, timetable_from_dict
from zonda.timetables import (
    ContinuousTimetable,
    CronTriggerTimetable,
    DeltaTriggerTimetable,
    EventsTimetable,
    MultipleCronTriggerTimetable,
)

JAN1 = datetime(2024, 1, 1, tzinfo=UTC)


def _runs(table: Any, start: datetime, count: int) -> list[DataInterval]:
    """The first ``count`` scheduled runs from ``start``, as the scheduler walks them."""
    out: list[DataInterval] = []
    last = None
    for _ in range(count):
        interval = table.next_run(last, start)
        if interval is None:
            break
        out.append(interval)
        last = interval.end
    return out


# --- what a cron string means ---------------------------------------------------------------------------------


def test_a_cron_string_is_a_trigger_schedule_by_default(zonda_home, monkeypatch) -> None:
    dag = DAG("cron", schedule="0 6 * * *", start_date=JAN1)
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert isinstance(DAG("preset", schedule="@daily", start_date=JAN1).timetable, CronTriggerTimetable)
    # The first run fires at the first cron time at or after start_date, with that time as its logical date
    # and an empty data interval; a data-interval schedule would wait a whole day for its first run.
    assert _runs(dag.timetable, JAN1, 2) == [
        DataInterval(datetime(2024, 1, 1, 6, tzinfo=UTC), datetime(2024, 1, 1, 6, tzinfo=UTC)),
        DataInterval(datetime(2024, 1, 2, 6, tzinfo=UTC), datetime(2024, 1, 2, 6, tzinfo=UTC)),
    ]
    # A manual run at a moment covers [moment - interval, moment]: empty here.
    moment = datetime(2024, 1, 5, 13, 7, tzinfo=UTC)
    assert dag.timetable.infer_data_interval(moment) == DataInterval(moment, moment)

    monkeypatch.setenv("ZONDA__SCHEDULER__CREATE_CRON_DATA_INTERVALS", "true")
    old_meaning = DAG("cron_old", schedule="0 6 * * *", start_date=JAN1).timetable
    assert isinstance(old_meaning, CronDataIntervalTimetable)
    assert _runs(old_meaning, JAN1, 1) == [
        DataInterval(datetime(2024, 1, 1, 6, tzinfo=UTC), datetime(2024, 1, 2, 6, tzinfo=UTC))
    ]
    assert isinstance(parse_schedule("@hourly", dag_id="x", cron_data_intervals=False), CronTriggerTimetable)


def test_a_timedelta_is_a_trigger_schedule_by_default(zonda_home, monkeypatch) -> None:
    from zonda.schedule import DeltaDataIntervalTimetable

    dag = DAG("delta", schedule=timedelta(hours=6), start_date=JAN1)
    assert isinstance(dag.timetable, DeltaTriggerTimetable)
    assert [r.start for r in _runs(dag.timetable, JAN1, 2)] == [JAN1, JAN1 + timedelta(hours=6)]
    monkeypatch.setenv("ZONDA__SCHEDULER__CREATE_DELTA_DATA_INTERVALS", "true")
    old_meaning = DAG("delta_old", schedule=timedelta(hours=6), start_date=JAN1).timetable
    assert isinstance(old_meaning, DeltaDataIntervalTimetable)
    assert _runs(old_meaning, JAN1, 1) == [DataInterval(JAN1, JAN1 + timedelta(hours=6))]


def test_cron_trigger_timetable_with_a_timezone_and_an_interval() -> None:
    table = CronTriggerTimetable("0 6 * * *", timezone="Europe/Amsterdam", interval=timedelta(hours=1))
    winter, summer = _runs(table, JAN1, 1)[0], table.next_run(None, datetime(2024, 7, 1, tzinfo=UTC))
    # 06:00 in Amsterdam: 05:00 UTC in winter, 04:00 UTC in summer; the data interval is the hour before.
    assert winter == DataInterval(datetime(2024, 1, 1, 4, tzinfo=UTC), datetime(2024, 1, 1, 5, tzinfo=UTC))
    assert summer == DataInterval(datetime(2024, 7, 1, 3, tzinfo=UTC), datetime(2024, 7, 1, 4, tzinfo=UTC))
    with pytest.raises(DagDefinitionError, match="unknown timezone 'Mars/Olympus'"):
        CronTriggerTimetable("0 6 * * *", timezone="Mars/Olympus")
    with pytest.raises(DagDefinitionError, match="not a valid cron expression"):
        CronTriggerTimetable("0 6 * *", timezone="UTC")


def test_cron_trigger_first_run_without_start_date_follows_run_immediately() -> None:
    now = datetime(2024, 1, 1, 6, 3, tzinfo=UTC)
    assert CronTriggerTimetable("0 6 * * *").first_start(now) == datetime(2024, 1, 2, 6, tzinfo=UTC)
    assert CronTriggerTimetable("0 6 * * *", run_immediately=True).first_start(now) == datetime(
        2024, 1, 1, 6, tzinfo=UTC
    )
    within = CronTriggerTimetable("0 6 * * *", run_immediately=timedelta(minutes=5))
    assert within.first_start(now) == datetime(2024, 1, 1, 6, tzinfo=UTC)
    assert within.first_start(now + timedelta(minutes=10)) == datetime(2024, 1, 2, 6, tzinfo=UTC)


def test_multiple_cron_trigger_timetable_fires_once_per_time() -> None:
    table = MultipleCronTriggerTimetable("0 6 * * *", "30 18 * * *", "0 6 * * 1", timezone="UTC")
    assert [r.end for r in _runs(table, JAN1, 4)] == [
        datetime(2024, 1, 1, 6, tzinfo=UTC),  # a Monday: two expressions match, one run
        datetime(2024, 1, 1, 18, 30, tzinfo=UTC),
        datetime(2024, 1, 2, 6, tzinfo=UTC),
        datetime(2024, 1, 2, 18, 30, tzinfo=UTC),
    ]
    assert table.latest_complete_interval(datetime(2024, 1, 3, 12, tzinfo=UTC)).end == datetime(
        2024, 1, 3, 6, tzinfo=UTC
    )


def test_delta_trigger_timetable_counts_from_start_date() -> None:
    table = DeltaTriggerTimetable(timedelta(hours=6), interval=timedelta(hours=1))
    assert [(r.start, r.end) for r in _runs(table, JAN1, 3)] == [
        (JAN1 - timedelta(hours=1), JAN1),
        (JAN1 + timedelta(hours=5), JAN1 + timedelta(hours=6)),
        (JAN1 + timedelta(hours=11), JAN1 + timedelta(hours=12)),
    ]
    with pytest.raises(DagDefinitionError, match="delta must be positive"):
        DeltaTriggerTimetable(timedelta(0))


def test_events_timetable() -> None:
    events = [datetime(2024, 3, 1, 20, tzinfo=UTC), JAN1, datetime(2024, 2, 1, tzinfo=UTC), JAN1]
    table = EventsTimetable(event_dates=events)
    assert table.summary == "3 events"
    assert [r.start for r in _runs(table, JAN1, 3)] == sorted(set(events))
    assert table.next_run(datetime(2024, 3, 1, 20, tzinfo=UTC), JAN1) is None  # no events left
    moment = datetime(2024, 2, 15, tzinfo=UTC)
    assert table.infer_data_interval(moment) == DataInterval(moment, moment)
    restricted = EventsTimetable(event_dates=events, restrict_to_events=True, description="Match days")
    assert restricted.infer_data_interval(moment).start == datetime(2024, 2, 1, tzinfo=UTC)
    assert restricted.infer_data_interval(JAN1 - timedelta(days=1)).start == JAN1
    assert restricted.summary == "Match days"


@pytest.mark.parametrize(
    "table",
    [
        CronTriggerTimetable("*/15 * * * *", timezone="Asia/Tokyo", interval=timedelta(minutes=15)),
        CronTriggerTimetable("@daily", run_immediately=timedelta(minutes=7)),
        MultipleCronTriggerTimetable("0 1 * * *", "0 13 * * *", timezone="UTC"),
        DeltaTriggerTimetable(timedelta(minutes=90)),
        EventsTimetable([JAN1, datetime(2024, 5, 1, tzinfo=UTC)], restrict_to_events=True),
        ContinuousTimetable(),
    ],
)
def test_every_timetable_survives_serialization(table: Any) -> None:
    """The scheduler never imports DAG files: what it rebuilds must schedule the same runs."""
    rebuilt = timetable_from_dict(table.serialize())
    assert type(rebuilt) is type(table)
    assert rebuilt.serialize() == table.serialize()
    now = datetime(2024, 3, 3, 3, 3, tzinfo=UTC)
    assert _runs(rebuilt, JAN1, 3) == _runs(table, JAN1, 3) or isinstance(table, ContinuousTimetable)
    assert rebuilt.first_start(now) == table.first_start(now)


def test_backfill_of_a_trigger_schedule_runs_each_fire_time_in_the_range() -> None:
    from types import SimpleNamespace

    from zonda.scheduler.runs import backfill_intervals

    sdag = SimpleNamespace(dag_id="d", timetable=CronTriggerTimetable("0 0 * * *"))
    intervals = backfill_intervals(sdag, JAN1, JAN1 + timedelta(days=2))  # type: ignore[arg-type]
    assert [iv.start for iv in intervals] == [JAN1 + timedelta(days=d) for d in range(3)]
    assert all(iv.start == iv.end for iv in intervals)


def test_continuous_needs_max_active_runs_one() -> None:
    with pytest.raises(DagDefinitionError, match=r"allows at most 1 active run\(s\), so max_active_runs must be set"):
        DAG("cont", schedule="@continuous", start_date=JAN1)
    with pytest.raises(DagDefinitionError, match="add max_active_runs=1"):
        DAG("cont", schedule="@continuous", start_date=JAN1, max_active_runs=2)
    assert isinstance(
        DAG("cont", schedule="@continuous", start_date=JAN1, max_active_runs=1).timetable, ContinuousTimetable
    )


# --- through the scheduler --------------------------------------------------------------------------------------

SCHEDULED = """
from datetime import UTC, datetime, timedelta
from zonda import DAG
from zonda.operators import EmptyOperator
from zonda.timetables import EventsTimetable

start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)

with DAG("cron_catchup", schedule="0 0 * * *", start_date=start, catchup=True):
    EmptyOperator(task_id="noop")

with DAG("cron_latest", schedule="0 0 * * *", start_date=start, catchup=False):
    EmptyOperator(task_id="noop")

with DAG("forever", schedule="@continuous", start_date=start, max_active_runs=1):
    EmptyOperator(task_id="noop")

with DAG("events", schedule=EventsTimetable([start + timedelta(hours=1), start + timedelta(days=1, hours=1),
                                            start + timedelta(days=400)]), start_date=start, catchup=True):
    EmptyOperator(task_id="noop")
"""


@pytest.fixture
def sched(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with h.LedgerSetup(zonda_home, None, monkeypatch) as setup:
        yield setup


def test_the_scheduler_creates_trigger_runs_and_one_continuous_run_at_a_time(sched: Any) -> None:
    from zonda.executors.local import SequentialExecutor
    from zonda.metastore import tables as t
    from zonda.scheduler.scheduler import Scheduler

    sched.dag("scheduled.py", SCHEDULED)
    h.store_dags(sched.settings, sched.metastore)
    scheduler = Scheduler(
        sched.settings, executor=SequentialExecutor(settings=sched.settings), metastore=sched.metastore
    )
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    scheduler.start()
    try:
        scheduler._create_due_runs()
        catchup = h.dag_runs(sched.engine, "cron_catchup")
        # Three midnights have come since start_date (two days ago, yesterday, today): three runs, each dated by
        # the moment it fires, with an empty data interval.
        assert [r.logical_date for r in catchup] == [midnight - timedelta(days=d) for d in (2, 1, 0)]
        assert all(r.data_interval_start == r.data_interval_end == r.logical_date for r in catchup)
        assert [r.logical_date for r in h.dag_runs(sched.engine, "cron_latest")] == [midnight]
        assert [r.logical_date for r in h.dag_runs(sched.engine, "events")] == [
            midnight - timedelta(days=2, hours=-1),
            midnight - timedelta(days=1, hours=-1),
        ]
        (first,) = h.dag_runs(sched.engine, "forever")
        assert first.data_interval_start == midnight - timedelta(days=2)
        scheduler._create_due_runs()  # the continuous run is still queued: no second one
        assert len(h.dag_runs(sched.engine, "forever")) == 1
        assert len(h.dag_runs(sched.engine, "cron_catchup")) == 3  # nothing twice
        with sched.engine.begin() as conn:
            conn.execute(update(t.dag_run).where(t.dag_run.c.dag_id == "forever").values(state="success"))
        scheduler._create_due_runs()
        runs = h.dag_runs(sched.engine, "forever")
        assert len(runs) == 2 and runs[1].data_interval_start == runs[0].data_interval_end
    finally:
        scheduler.shutdown()


def test_public_names_resolve() -> None:
    import zonda.timetables

    for name in zonda.timetables.__all__:
        assert getattr(zonda.timetables, name) is not None, name
    assert zonda.timetables.built_in_timetable("CronTriggerTimetable") is CronTriggerTimetable
    assert zonda.timetables.built_in_timetable("NoSuchTimetable") is None
    with pytest.raises(AttributeError):
        zonda.timetables.NoSuchTimetable  # noqa: B018
