"""No DAG's schedule can stop the scheduler.

A schedule that never fires, an invalid cron string or a timetable that raises is refused when the file is
parsed (an import error naming the DAG and the fix). What still reaches the scheduler broken (a schedule an older
Zonda stored, a plugin timetable that is not installed, a stored DAG that does not load, a run that cannot be
decided) stays with that DAG: logged once with its id, recorded on its ``dag`` row and shown by
``zonda dags list-import-errors``, while the real scheduler loop goes on running the other DAGs' tasks, on
SQLite and PostgreSQL. A scheduled DAG without ``start_date`` starts when the scheduler first sees it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda import DAG
from zonda.exceptions import DagDefinitionError
from zonda.schedule import DataInterval, Timetable


class Env(h.LedgerSetup):
    """The shared set-up, with one in-process scheduler that runs tasks in itself."""

    def scheduler(self) -> Any:
        from zonda.executors.local import SequentialExecutor
        from zonda.scheduler.scheduler import Scheduler

        return Scheduler(self.settings, executor=SequentialExecutor(settings=self.settings), metastore=self.metastore)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Env(zonda_home, url, monkeypatch) as setup:
        yield setup


@pytest.fixture
def sqlite_env(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with Env(zonda_home, None, monkeypatch) as setup:
        yield setup


# --- refused at parse time -----------------------------------------------------------------------------------

NEVER_FIRES = [
    ("0 0 30 2 *", "February has no 30th day"),
    ("0 0 31 4 *", "April has no 31st day"),
    ("0 0 31 2,4,6,9,11 *", "none of February, April, June, September, November has a 31st day"),
    ("15 6 30,31 2 *", "February has no 30th day"),
    ("0 0 31 11 *", "November has no 31st day"),
    # Beyond the day/month check: croniter's own bounded search finds no time (a day and an nth weekday).
    ("0 0 30 2 1#5", "croniter finds no time it matches"),
]


@pytest.mark.parametrize(("expression", "why"), NEVER_FIRES)
def test_a_schedule_that_never_fires_is_refused_with_the_reason(expression: str, why: str) -> None:
    with pytest.raises(DagDefinitionError) as caught:
        DAG("never", schedule=expression, start_date=datetime(2024, 1, 1))
    message = str(caught.value)
    assert f"DAG 'never': schedule '{expression}' never fires: {why}" in message
    assert "fix the cron expression" in message


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # every leap year
        "0 0 L 2 *",  # last day of February
        "0 0 30 2 1",  # day-of-month OR day-of-week: every Monday in February
        "0 0 31 * *",  # months that have a 31st
        "0 0 31 1-3 *",
        "@yearly",
    ],
)
def test_rare_but_real_schedules_are_accepted(expression: str) -> None:
    dag = DAG("rare", schedule=expression, start_date=datetime(2024, 1, 1))
    interval = dag.timetable.next_interval(datetime(2024, 1, 1, tzinfo=UTC))
    assert interval is not None and interval.start >= datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("* * *", "it has 3 fields, cron needs 5"),
        ("0 0 32 * *", "is not a valid cron expression"),
        ("@sometimes", "unknown schedule preset '@sometimes'"),
        (timedelta(0), "schedule timedelta must be positive"),
    ],
)
def test_invalid_schedules_are_refused(schedule: Any, expected: str) -> None:
    with pytest.raises(DagDefinitionError, match=expected):
        DAG("invalid", schedule=schedule, start_date=datetime(2024, 1, 1))


class ExplodingTimetable(Timetable):
    """A user timetable whose next-run computation raises."""

    summary = "exploding"

    def next_interval(self, after: datetime) -> DataInterval | None:
        raise ZeroDivisionError("bad arithmetic in my timetable")

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        return None


class ExplodingLatestTimetable(Timetable):
    summary = "exploding-latest"

    def next_interval(self, after: datetime) -> DataInterval | None:
        return DataInterval(after, after + timedelta(hours=1))

    def latest_complete_interval(self, now: datetime) -> DataInterval | None:
        raise RuntimeError("no idea what happened last")


@pytest.mark.parametrize(
    ("timetable", "error"),
    [
        (ExplodingTimetable(), "ZeroDivisionError: bad arithmetic in my timetable"),
        (ExplodingLatestTimetable(), "RuntimeError: no idea what happened last"),
    ],
)
@pytest.mark.parametrize("start_date", [datetime(2024, 1, 1), None])
def test_a_timetable_that_raises_is_refused(timetable: Timetable, error: str, start_date: datetime | None) -> None:
    with pytest.raises(DagDefinitionError) as caught:
        DAG("raising", schedule=timetable, start_date=start_date)
    message = str(caught.value)
    assert message.startswith("DAG 'raising': schedule")
    assert error in message
    assert "fix the schedule or the timetable" in message


NEVER_FIRES_FILE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("feb30", schedule="0 0 30 2 *", start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="noop")
"""


def test_the_dag_processor_records_a_never_firing_schedule_as_the_files_import_error(sqlite_env: Env) -> None:
    env = sqlite_env
    path = env.dag("feb30.py", NEVER_FIRES_FILE)
    report = h.store_dags(env.settings, env.metastore, expect_errors=True)
    assert report.errors
    from zonda.metastore import tables as t

    with env.engine.connect() as conn:
        errors = conn.execute(select(t.import_error.c.filename, t.import_error.c.stacktrace)).all()
        dags = conn.execute(select(t.dag.c.dag_id)).scalars().all()
    assert [e.filename for e in errors] == [str(path)]
    assert "schedule '0 0 30 2 *' never fires: February has no 30th day" in errors[0].stacktrace
    assert "feb30" not in dags


# --- what still reaches the scheduler stays with its DAG ------------------------------------------------------


DAGS = """
from datetime import datetime
from zonda import DAG
from zonda.operators import EmptyOperator, PythonOperator


def work(**context):
    record(context)


with DAG("healthy", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="first", python_callable=work) >> PythonOperator(task_id="second", python_callable=work)

for name in ("stored_feb30", "missing_plugin", "unloadable", "undecidable"):
    with DAG(name, schedule="@daily", start_date=datetime(2024, 1, 1)):
        EmptyOperator(task_id="noop") >> EmptyOperator(task_id="after")
"""


def _rewrite_serialized(env: Env, dag_id: str, change: Any) -> None:
    """Store what an older or different Zonda could have stored for ``dag_id``: ``change(data)`` edits the
    serialized DAG in place; the hash changes so the scheduler reloads it."""
    from zonda import serde
    from zonda.metastore import tables as t

    sd = t.serialized_dag
    with env.engine.begin() as conn:
        text = conn.execute(select(sd.c.data).where(sd.c.dag_id == dag_id)).scalar_one()
        data = serde.loads(text)
        change(data)
        text = serde.dumps(data)
        digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
        conn.execute(update(sd).where(sd.c.dag_id == dag_id).values(data=text, dag_hash=digest))


def _break_feb30(data: dict[str, Any]) -> None:
    data["schedule"] = {"type": "CronTimetable", "summary": "0 0 30 2 *", "expression": "0 0 30 2 *"}


def _break_plugin(data: dict[str, Any]) -> None:
    data["schedule"] = {"type": "FiscalQuarters", "summary": "fiscal quarters"}


def _break_loading(data: dict[str, Any]) -> None:
    data["tasks"][0]["trigger_rule"] = "when_the_moon_is_full"


def _break_deciding(data: dict[str, Any]) -> None:
    # A mapped task whose expansion the scheduler cannot read (a malformed stored spec).
    data["schedule"] = {"type": "NullTimetable", "summary": "None"}
    data["tasks"][0]["expand"] = {"kind": "expand", "args": {"x": {"neither_length_nor_xcom": 1}}}


BROKEN = {
    "stored_feb30": (_break_feb30, "CroniterBadDateError"),
    "missing_plugin": (_break_plugin, "unknown timetable 'FiscalQuarters'"),
    "unloadable": (_break_loading, "when_the_moon_is_full"),
    "undecidable": (_break_deciding, "KeyError"),
}


def _problems(env: Env) -> dict[str, str | None]:
    from zonda.metastore import tables as t

    with env.engine.connect() as conn:
        return dict(conn.execute(select(t.dag.c.dag_id, t.dag.c.scheduling_error)).all())


def _pass_with_run_creation(scheduler: Any) -> None:
    scheduler._last_run_creation = 0.0  # run creation is due on every one of these passes
    scheduler.run_once()


def test_a_broken_dag_stays_with_that_dag_and_the_scheduler_runs_the_others(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    from zonda.scheduler.runs import trigger_dag

    env.dag("dags.py", DAGS)
    h.store_dags(env.settings, env.metastore)
    for dag_id, (change, _) in BROKEN.items():
        _rewrite_serialized(env, dag_id, change)
    undecidable_run = int(trigger_dag(env.engine, "undecidable")["id"])
    healthy_runs = [int(trigger_dag(env.engine, "healthy", run_id=f"healthy_{i}")["id"]) for i in range(2)]
    caplog.set_level(logging.INFO, logger="zonda.scheduler")

    # Twice: a restarted scheduler meets the same stored DAGs and must survive them again.
    for _ in range(2):
        scheduler = env.scheduler()
        scheduler.start()
        try:
            deadline = time.monotonic() + 30
            while True:
                _pass_with_run_creation(scheduler)
                states = h.run_states(env.engine, healthy_runs)
                if all(states.get(r) in h.TERMINAL_RUN for r in healthy_runs):
                    break
                assert time.monotonic() < deadline, states
            for _ in range(5):  # more passes: the problems repeat, the log does not
                _pass_with_run_creation(scheduler)
        finally:
            scheduler.shutdown()
        if len(healthy_runs) == 2:  # after the first scheduler: its runs all ran, then one for the next
            assert h.run_states(env.engine, healthy_runs) == {r: "success" for r in healthy_runs}
            ran = {(e.run_id, e.task_id) for e in h.read_ledger(env.ledger)}
            assert ran == {(f"healthy_{i}", task) for i in range(2) for task in ("first", "second")}
            healthy_runs.append(int(trigger_dag(env.engine, "healthy", run_id="healthy_after_restart")["id"]))

    assert h.run_states(env.engine, healthy_runs)[healthy_runs[-1]] == "success"
    problems = _problems(env)
    assert problems["healthy"] is None
    for dag_id, (_, detail) in BROKEN.items():
        assert problems[dag_id] is not None, dag_id
        assert problems[dag_id].startswith("the scheduler cannot "), problems[dag_id]
        assert detail in problems[dag_id], problems[dag_id]
    # Nothing was created for the DAGs whose schedule cannot be computed; the undecidable run waits.
    assert h.dag_runs(env.engine, "stored_feb30") == []
    assert h.dag_runs(env.engine, "missing_plugin") == []
    assert h.run_states(env.engine, [undecidable_run]) == {undecidable_run: "running"}
    # Logged with the DAG id, once per scheduler (two started here), not once per pass.
    for dag_id in BROKEN:
        lines = [
            r for r in caplog.records if r.levelno >= logging.ERROR and r.getMessage().startswith(f"DAG {dag_id}:")
        ]
        assert len(lines) == 2, (dag_id, [r.getMessage() for r in lines])
        assert lines[0].exc_info is not None  # with the traceback, for whoever fixes it


def test_a_fixed_dag_is_scheduled_again_and_its_problem_cleared(sqlite_env: Env) -> None:
    env = sqlite_env
    env.dag("dags.py", DAGS)
    h.store_dags(env.settings, env.metastore)
    _rewrite_serialized(env, "stored_feb30", _break_feb30)
    scheduler = env.scheduler()
    scheduler.start()
    try:
        _pass_with_run_creation(scheduler)
        assert "CroniterBadDateError" in (_problems(env)["stored_feb30"] or "")
        # The DAG processor stores the file's (valid) version again.
        _rewrite_serialized(env, "stored_feb30", lambda data: data.update(schedule=_daily()))
        scheduler._dag_checked.clear()  # the hash is re-read at most once a second
        _pass_with_run_creation(scheduler)
    finally:
        scheduler.shutdown()
    assert _problems(env)["stored_feb30"] is None
    assert len(h.dag_runs(env.engine, "stored_feb30")) == 1  # catchup=False: the latest interval


def _daily() -> dict[str, Any]:
    return {"type": "CronTimetable", "summary": "@daily", "expression": "0 0 * * *"}


def test_list_import_errors_shows_the_dags_the_scheduler_cannot_schedule(
    sqlite_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from zonda.cli import main

    env = sqlite_env
    path = env.dag("dags.py", DAGS)
    h.store_dags(env.settings, env.metastore)
    _rewrite_serialized(env, "missing_plugin", _break_plugin)
    scheduler = env.scheduler()
    scheduler.start()
    try:
        _pass_with_run_creation(scheduler)
    finally:
        scheduler.shutdown()
    capsys.readouterr()
    assert main(["dags", "list-import-errors", "-o", "json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["filename"] == str(path)
    assert row["error"].startswith("DAG 'missing_plugin': the scheduler cannot compute the next run")
    assert "unknown timetable 'FiscalQuarters'" in row["error"]
    assert main(["dags", "list"]) == 0
    assert "1 DAG(s) the scheduler cannot schedule (missing_plugin)" in capsys.readouterr().err


# --- no start_date: the DAG starts when the scheduler first sees it (Airflow 3) ---------------------------------

NO_START = """
from datetime import timedelta
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("every_second", schedule=timedelta(seconds=1)):
    EmptyOperator(task_id="noop")

with DAG("daily_from_now", schedule="@daily"):
    EmptyOperator(task_id="noop")

with DAG("once_now", schedule="@once"):
    EmptyOperator(task_id="noop")
"""


def test_a_scheduled_dag_without_start_date_starts_when_first_seen(env: Env) -> None:
    from zonda.metastore import tables as t

    env.dag("no_start.py", NO_START)
    h.store_dags(env.settings, env.metastore)
    seen = datetime.now(UTC)
    scheduler = env.scheduler()
    scheduler.start()
    try:
        _pass_with_run_creation(scheduler)
        first_pass_done = datetime.now(UTC)
        assert h.dag_runs(env.engine, "daily_from_now") == []
        (once,) = h.dag_runs(env.engine, "once_now")
        assert seen <= once.logical_date <= first_pass_done
        # A timedelta schedule is a trigger schedule (Airflow 3's DeltaTriggerTimetable): its first run fires the
        # moment the scheduler first sees it, dated by that moment, never earlier.
        (first,) = h.dag_runs(env.engine, "every_second")
        assert seen <= first.logical_date == first.data_interval_start == first.data_interval_end <= first_pass_done
        with env.engine.connect() as conn:
            next_runs = dict(conn.execute(select(t.dag.c.dag_id, t.dag.c.next_dagrun)).all())
        # Where each DAG goes next is kept on its row (so a restart does not move it). @daily is a trigger schedule
        # too: its first run fires at the next midnight and that midnight is its logical date.
        assert next_runs["every_second"] == first.logical_date + timedelta(seconds=1)
        midnights = {
            when.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            for when in (seen, first_pass_done)
        }
        assert next_runs["daily_from_now"] in midnights
        deadline = time.monotonic() + 15
        while len(h.dag_runs(env.engine, "every_second")) < 2:
            assert time.monotonic() < deadline, "no second run for a DAG without start_date"
            time.sleep(0.2)
            _pass_with_run_creation(scheduler)
    finally:
        scheduler.shutdown()
    second = h.dag_runs(env.engine, "every_second")[1]
    assert second.logical_date >= first.logical_date + timedelta(seconds=1)
