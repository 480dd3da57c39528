"""The scheduler's side of deadline alerts: store each run's deadlines, then judge the due ones.

:func:`watch` writes one ``dag_run_deadline`` row per run and alert when the scheduler first sees the run
queued (its own runs and triggered ones alike). :func:`judge_due` is the check of every scheduler loop: one query
on the ``(resolved, deadline_at)`` index for the unresolved rows whose moment has passed, whatever the number of
runs. A row is resolved with a compare-and-set, so with several schedulers exactly one of them requests the
callback, and the DAG processor runs it (the scheduler never imports user code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from zonda.dag_processing.callbacks import DAG_DEADLINE, request_callback
from zonda.deadlines import deadline_at
from zonda.metastore import tables as t
from zonda.state import DagRunState

log = logging.getLogger(__name__)

#: Rows judged per check; more wait for the next loop (a second later), so one check stays short.
BATCH = 200
_UNFINISHED = (DagRunState.QUEUED.value, DagRunState.RUNNING.value)


def watch(conn: Any, runs: Iterable[tuple[Any, list[dict[str, Any]]]]) -> set[int]:
    """Store the deadlines of ``runs`` (``(row with id, logical_date, queued_at; serialized alerts)``) that have
    none yet; returns the ids of the runs now watched."""
    runs = [(run, alerts) for run, alerts in runs if alerts]
    if not runs:
        return set()
    d = t.dag_run_deadline
    ids = [run.id for run, _ in runs]
    stored = set(conn.execute(select(d.c.dag_run_id).where(d.c.dag_run_id.in_(ids)).distinct()).scalars())
    rows = []
    for run, alerts in runs:
        if run.id in stored:
            continue
        for index, alert in enumerate(alerts):
            moment = deadline_at(alert, logical_date=run.logical_date, queued_at=run.queued_at)
            if moment is not None:
                rows.append({"dag_run_id": run.id, "alert_index": index, "deadline_at": moment, "resolved": False})
    if rows:
        conn.execute(insert(d), rows)
    return set(ids)


def judge_due(conn: Any, now: datetime, fileloc_of: Callable[[str], str | None]) -> int:
    """Resolve the deadlines that passed: missed when the run is still queued or running (its callback is
    requested), met otherwise. Returns how many were missed."""
    d, run = t.dag_run_deadline, t.dag_run
    due = conn.execute(
        select(d.c.id, d.c.dag_run_id, d.c.alert_index, d.c.deadline_at, run.c.dag_id, run.c.run_id, run.c.state)
        .join(run, run.c.id == d.c.dag_run_id)
        .where(d.c.resolved.is_(False), d.c.deadline_at <= now)
        .order_by(d.c.deadline_at)
        .limit(BATCH)
    ).all()
    missed = 0
    for row in due:
        is_missed = row.state in _UNFINISHED
        taken = conn.execute(
            update(d).where(d.c.id == row.id, d.c.resolved.is_(False)).values(resolved=True, missed=is_missed)
        )
        if taken.rowcount != 1 or not is_missed:
            continue
        missed += 1
        log.warning(
            "DAG run %s.%s missed its deadline %s (still %s); asking for its deadline callback",
            row.dag_id,
            row.run_id,
            row.deadline_at.isoformat(),
            row.state,
        )
        # The alert's position in DAG(deadline=[...]) travels in map_index (unused by run-level requests).
        request_callback(
            conn,
            kind=DAG_DEADLINE,
            dag_id=row.dag_id,
            fileloc=fileloc_of(row.dag_id),
            dag_run_id=row.dag_run_id,
            map_index=row.alert_index,
            message=row.deadline_at.isoformat(),
        )
    return missed
