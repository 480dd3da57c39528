"""Deadline alerts through the real scheduler loop (LocalExecutor) and the DAG processor's callback runner.

As in Airflow 3.3 (``DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT / DAGRUN_LOGICAL_DATE /
FIXED_DATETIME(...), interval=..., callback=...)``): a run still unfinished at its deadline has the callback run
once; a run that ended in time has none. Each callback appends a JSON line to a file, which the tests read.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda.deadlines import DeadlineAlert, DeadlineReference, deadline_at
from zonda.exceptions import DagDefinitionError

DAGS = """
import json
import time
from datetime import datetime, timedelta

from zonda import DAG
from zonda.deadlines import DeadlineAlert, DeadlineReference, SyncCallback
from zonda.notifications import BaseNotifier
from zonda.operators import PythonOperator

OUT = {out!r}


class Note(BaseNotifier):
    template_fields = ("text",)

    def __init__(self, text):
        self.text = text

    def notify(self, context):
        line = {{"text": self.text, "reason": context["reason"], "deadline": context["deadline"]["deadline_at"].isoformat()}}
        with open(OUT, "a") as handle:
            handle.write(json.dumps(line) + "\\n")


def note_function(context, tag):
    with open(OUT, "a") as handle:
        handle.write(json.dumps({{"text": tag + " " + context["dag_run"].run_id, "reason": context["reason"]}}) + "\\n")


def slow():
    time.sleep(3)


with DAG("dl_slow", schedule=None, start_date=datetime(2024, 1, 1), deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(seconds=1),
        callback=Note("{{{{ dag.dag_id }}}} {{{{ run_id }}}} late"))):
    PythonOperator(task_id="slow", python_callable=slow)

with DAG("dl_fast", schedule=None, start_date=datetime(2024, 1, 1), deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(seconds=30), callback=Note("never"))):
    PythonOperator(task_id="fast", python_callable=lambda: None)

with DAG("dl_fixed", schedule=None, start_date=datetime(2024, 1, 1), deadline=[
        DeadlineAlert(reference=DeadlineReference.FIXED_DATETIME(datetime(2000, 1, 1)), interval=timedelta(0),
                      callback=SyncCallback(note_function, kwargs={{"tag": "fixed"}})),
        DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=timedelta(days=3650),
                      callback=Note("far away")),
]):
    PythonOperator(task_id="slow", python_callable=slow)
"""


def _notes(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _deadline_rows(metastore: Any) -> list[tuple[str, int, bool, bool | None]]:
    from zonda.metastore import tables as t

    d, r = t.dag_run_deadline, t.dag_run
    with metastore.engine.connect() as conn:
        rows = conn.execute(
            select(r.c.dag_id, d.c.alert_index, d.c.resolved, d.c.missed)
            .join(r, r.c.id == d.c.dag_run_id)
            .order_by(r.c.dag_id, d.c.alert_index)
        ).all()
    return [tuple(row) for row in rows]


def test_a_missed_deadline_calls_its_callback_once_and_a_met_one_never(scheduler_setup: Any) -> None:
    from zonda.dag_processing import DagProcessor
    from zonda.executors.local import LocalExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    home, settings, metastore = scheduler_setup
    out = home / "deadlines.jsonl"
    h.write_dag(home, "deadlines.py", DAGS.format(out=str(out)))
    h.store_dags(settings, metastore)
    runs = {dag_id: int(trigger_dag(metastore.engine, dag_id)["id"]) for dag_id in ("dl_slow", "dl_fast", "dl_fixed")}
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=3, settings=settings), metastore=metastore)
    states = h.drive(scheduler, runs.values(), timeout=90)
    assert set(states.values()) == {"success"}
    # The fast run ended before its deadline passed: the loop resolves it only once it is due (30 s); the
    # ten-year one stays pending.
    assert _deadline_rows(metastore) == [
        ("dl_fast", 0, False, None),
        ("dl_fixed", 0, True, True),
        ("dl_fixed", 1, False, None),
        ("dl_slow", 0, True, True),
    ]
    with DagProcessor(settings, metastore) as processor:
        assert processor.run_callbacks(timeout=60) == 2
    notes = sorted(_notes(out), key=lambda n: n["text"])
    slow_run = h.dag_runs(metastore.engine, "dl_slow")[0]
    fixed_run = h.dag_runs(metastore.engine, "dl_fixed")[0]
    assert [n["text"] for n in notes] == [f"dl_slow {slow_run.run_id} late", f"fixed {fixed_run.run_id}"]
    assert {n["reason"] for n in notes} == {"deadline_missed"}
    queued_at = slow_run.queued_at.replace(tzinfo=UTC) if slow_run.queued_at.tzinfo is None else slow_run.queued_at
    assert datetime.fromisoformat(notes[0]["deadline"]) == queued_at + timedelta(seconds=1)

    # Judging again (as every loop does) finds nothing new: each callback was asked for once.
    scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=1, settings=settings), metastore=metastore)
    scheduler._judge_deadlines()
    with DagProcessor(settings, metastore) as processor:
        assert processor.run_callbacks(timeout=30) == 0


def test_the_check_is_one_query_however_many_runs_wait(scheduler_setup: Any) -> None:
    from sqlalchemy import insert

    from zonda.metastore import tables as t
    from zonda.scheduler.scheduler import Scheduler

    _, settings, metastore = scheduler_setup
    now = datetime.now(UTC)
    with metastore.engine.begin() as conn:
        for i in range(300):
            run_id = conn.execute(
                insert(t.dag_run).values(
                    dag_id="many", run_id=f"manual__{i}", state="running", run_type="manual", conf="{}", queued_at=now
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(t.dag_run_deadline).values(
                    dag_run_id=run_id, alert_index=0, deadline_at=now + timedelta(hours=1), resolved=False
                )
            )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    scheduler = Scheduler(settings, metastore=metastore)
    event.listen(metastore.engine, "before_cursor_execute", count)
    try:
        scheduler._judge_deadlines()
    finally:
        event.remove(metastore.engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "dag_run_deadline" in selects[0]
    assert not [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]


def test_deadline_moments_and_bad_definitions() -> None:
    logical = datetime(2024, 1, 1, tzinfo=UTC)
    queued = datetime(2024, 1, 2, 5, tzinfo=UTC)
    hour = timedelta(hours=1)
    alert = DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=hour, callback=print)
    assert deadline_at(alert.serialize(), logical_date=logical, queued_at=queued) == logical + hour
    alert = DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=hour, callback=print)
    assert deadline_at(alert.serialize(), logical_date=None, queued_at=queued) == queued + hour
    fixed = DeadlineReference.FIXED_DATETIME(datetime(2024, 6, 1, 6, tzinfo=UTC))
    alert = DeadlineAlert(reference=fixed, interval=timedelta(0), callback=print)
    assert deadline_at(alert.serialize(), logical_date=None, queued_at=None) == datetime(2024, 6, 1, 6, tzinfo=UTC)
    alert = DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=hour, callback=print)
    assert deadline_at(alert.serialize(), logical_date=None, queued_at=queued) is None
    with pytest.raises(DagDefinitionError, match="takes a timedelta"):
        DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=3600, callback=print)
    with pytest.raises(DagDefinitionError, match=r"DeadlineReference\.DAGRUN_LOGICAL_DATE, DAGRUN_QUEUED_AT or"):
        DeadlineAlert(reference="DAGRUN_QUEUED_AT", interval=hour, callback=print)
