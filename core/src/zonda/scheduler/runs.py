"""Creating DAG runs by hand: ``zonda dags trigger`` and ``zonda dags backfill``.

They use only the serialized DAG, so they work without the DAG file's dependencies and never run user code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from zonda.exceptions import Conflict, DagNotFound, ParamValidationError, ZondaException
from zonda.metastore import tables as t
from zonda.scheduler.serialized import SerializedDag
from zonda.state import DagRunState
from zonda.timezone import utcnow


def load_serialized(conn: Any, dag_id: str) -> SerializedDag:
    row = conn.execute(select(t.serialized_dag.c.data).where(t.serialized_dag.c.dag_id == dag_id)).first()
    if row is None:
        raise unknown_dag(conn, dag_id)
    return SerializedDag.from_json(row.data)


def unknown_dag(conn: Any, dag_id: str) -> DagNotFound:
    """The error for a DAG id the metastore does not know, with the stored ids most like it."""
    from zonda.suggestions import did_you_mean

    known = [r[0] for r in conn.execute(select(t.serialized_dag.c.dag_id))]
    suggestion = did_you_mean(dag_id, known)
    return DagNotFound(
        f"no DAG {dag_id!r} in the metastore; {suggestion + ' ' if suggestion else ''}"
        "DAGs get there when the DAG processor (zonda scheduler / zonda standalone) parses their files; "
        "`zonda dags list-import-errors` shows why a file failed"
    )


def trigger_dag(
    engine: Any,
    dag_id: str,
    *,
    conf: Mapping[str, Any] | None = None,
    logical_date: datetime | None = None,
    run_id: str | None = None,
    run_type: str = "manual",
) -> dict[str, Any]:
    """Create a queued run; ``conf`` is validated against the DAG's params first."""
    from zonda import serde
    from zonda.identifiers import validate_conf, validate_run_id

    if run_id is not None:
        validate_run_id(run_id)
    conf = validate_conf(conf)

    with engine.begin() as conn:
        sdag = load_serialized(conn, dag_id)
        try:
            sdag.params.resolve(conf or {})
        except ParamValidationError as exc:
            raise ParamValidationError(f"DAG {dag_id!r}: {exc}") from None
        when = logical_date or utcnow()
        interval = sdag.timetable.infer_data_interval(when)
        run_id = run_id or f"{run_type}__{when.isoformat()}"
        values = {
            "dag_id": dag_id,
            "run_id": run_id,
            "logical_date": when,
            "data_interval_start": interval.start,
            "data_interval_end": interval.end,
            "run_type": run_type,
            "state": DagRunState.QUEUED.value,
            "conf": serde.dumps(dict(conf or {})),
            "queued_at": utcnow(),
            "external_trigger": run_type == "manual",
        }
        # The unique (dag_id, run_id) constraint tells a clash: no statement to look first (a trigger is three
        # statements: read the serialized DAG, insert, commit).
        try:
            result = conn.execute(insert(t.dag_run).values(**values))
        except IntegrityError:
            raise Conflict(f"DAG {dag_id!r} already has a run {run_id!r}; pass another --run-id") from None
        values["id"] = int(result.inserted_primary_key[0])
    return values


def backfill_intervals(sdag: SerializedDag, start: datetime, end: datetime) -> list[Any]:
    """Every schedule interval starting in [start, end]."""
    timetable = sdag.timetable
    if not timetable.periodic:
        raise ZondaException(f"DAG {sdag.dag_id!r} has no periodic schedule, so there is nothing to backfill")
    intervals = []
    last_end = None
    for _ in range(100_000):
        interval = timetable.next_run(last_end, start)
        if interval is None or interval.start > end:
            break
        intervals.append(interval)
        last_end = interval.end
    return intervals
