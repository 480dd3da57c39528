"""DAG runs: trigger (conf validated against the DAG's params), list with filters, get, and queue a backfill.

Called by ``zonda dags trigger | list-runs | backfill`` and by the web server and API. Runs are created from the
serialized DAG only, so no DAG file is imported and no user code runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from zonda.exceptions import NotFound, OperationError, ParamValidationError
from zonda.metastore import tables as t
from zonda.operations.dags import require_dag
from zonda.scheduler.runs import backfill_intervals, load_serialized, trigger_dag
from zonda.state import DagRunState

RUN_STATES = tuple(s.value for s in DagRunState)


@dataclass(frozen=True)
class DagRunRecord:
    """One DAG run. ``conf`` has values under secret-looking keys shown as ``***``."""

    id: int
    dag_id: str
    run_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    external_trigger: bool
    conf: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class BackfillPlan:
    """The intervals a backfill covers and which of them still need a run."""

    dag_id: str
    intervals: tuple[Any, ...]
    todo: tuple[Any, ...]
    paused: bool


def _conf(raw: Any) -> dict[str, Any]:
    from zonda import serde
    from zonda.masking import get_masker

    if not raw:
        return {}
    try:
        value = serde.loads(raw)
    except Exception:  # an unreadable stored conf is shown as absent, never as its raw text
        return {}
    return get_masker().redact(value) if isinstance(value, dict) else {}


def record(row: Any) -> DagRunRecord:
    return DagRunRecord(
        id=row.id,
        dag_id=row.dag_id,
        run_id=row.run_id,
        state=row.state,
        run_type=row.run_type,
        logical_date=row.logical_date,
        queued_at=row.queued_at,
        start_date=row.start_date,
        end_date=row.end_date,
        data_interval_start=row.data_interval_start,
        data_interval_end=row.data_interval_end,
        external_trigger=bool(row.external_trigger),
        conf=_conf(row.conf),
    )


def trigger(
    engine: Any,
    dag_id: str,
    *,
    conf: Mapping[str, Any] | None = None,
    logical_date: datetime | None = None,
    run_id: str | None = None,
) -> DagRunRecord:
    """Queue a manual run; a running scheduler starts it. ``conf`` must match the DAG's params
    (:class:`~zonda.exceptions.ParamValidationError` otherwise), ``run_id`` the identifier rules, and the run id
    must be new (:class:`~zonda.exceptions.Conflict`). Called by ``zonda dags trigger`` and the API."""
    from types import SimpleNamespace

    created = trigger_dag(engine, dag_id, conf=conf, logical_date=logical_date, run_id=run_id)
    # The new run is what was inserted (not started, so no start or end): no second read.
    return record(SimpleNamespace(**created, start_date=None, end_date=None))


def find_run(conn: Any, dag_id: str, run_id: str) -> Any:
    """The ``dag_run`` row, or NotFound naming the closest run ids (or the unknown DAG)."""
    run = conn.execute(select(t.dag_run).where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.run_id == run_id)).first()
    if run is not None:
        return run
    require_dag(conn, dag_id)
    from zonda.suggestions import unknown_name

    recent = conn.execute(
        select(t.dag_run.c.run_id).where(t.dag_run.c.dag_id == dag_id).order_by(t.dag_run.c.id.desc()).limit(1000)
    )
    raise NotFound(
        unknown_name(
            f"DAG {dag_id!r} has no run {run_id!r}",
            run_id,
            [r[0] for r in recent],
            f"`zonda dags list-runs {dag_id}` lists its runs and `zonda dags trigger {dag_id}` creates one",
        )
    )


def get_run(engine: Any, dag_id: str, run_id: str) -> DagRunRecord:
    """One run by DAG id and run id (NotFound with suggestions). Called by the UI's run page and the API."""
    with engine.connect() as conn:
        return record(find_run(conn, dag_id, run_id))


def list_runs(
    engine: Any,
    dag_id: str | None = None,
    *,
    states: Iterable[str] | None = None,
    run_types: Iterable[str] | None = None,
    logical_date_from: datetime | None = None,
    logical_date_to: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[DagRunRecord]:
    """Runs newest first (by logical date), of one DAG or of all; filters combine. An unknown ``dag_id`` is
    :class:`~zonda.exceptions.DagNotFound`, not an empty list. Called by ``zonda dags list-runs`` and the API."""
    dr = t.dag_run
    wanted_states = _checked_states(states)
    if (limit is not None and limit < 0) or offset < 0:
        raise OperationError("limit and offset must be 0 or more")
    query = select(dr)
    if dag_id is not None:
        query = query.where(dr.c.dag_id == dag_id)
    if wanted_states:
        query = query.where(dr.c.state.in_(wanted_states))
    if run_types:
        query = query.where(dr.c.run_type.in_(list(run_types)))
    if logical_date_from is not None:
        query = query.where(dr.c.logical_date >= logical_date_from)
    if logical_date_to is not None:
        query = query.where(dr.c.logical_date <= logical_date_to)
    query = query.order_by(dr.c.logical_date.desc(), dr.c.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        if not rows and dag_id is not None:
            require_dag(conn, dag_id)
    return [record(row) for row in rows]


def _checked_states(states: Iterable[str] | None) -> list[str]:
    wanted = list(states or ())
    unknown = [s for s in wanted if s not in RUN_STATES]
    if unknown:
        raise OperationError(f"unknown run state {unknown[0]!r}; the states are {', '.join(RUN_STATES)}")
    return wanted


def run_states(engine: Any, dag_run_ids: Iterable[int]) -> dict[int, str]:
    """Current state of each run id (a run deleted meanwhile is absent): for following runs until they end."""
    ids = sorted(set(dag_run_ids))
    found: dict[int, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(select(t.dag_run.c.id, t.dag_run.c.state).where(t.dag_run.c.id.in_(chunk)))
            found.update((row.id, row.state) for row in rows)
    return found


def plan_backfill(engine: Any, dag_id: str, start: datetime, end: datetime) -> BackfillPlan:
    """The schedule intervals starting in [start, end] and those without a run yet (they are left as they are
    when one exists). Called by ``zonda dags backfill`` (also for ``--dry-run``)."""
    with engine.connect() as conn:
        sdag = load_serialized(conn, dag_id)
        existing = {
            row.logical_date
            for row in conn.execute(select(t.dag_run.c.logical_date).where(t.dag_run.c.dag_id == dag_id)).all()
        }
        paused = conn.execute(select(t.dag.c.is_paused).where(t.dag.c.dag_id == dag_id)).scalar()
    intervals = backfill_intervals(sdag, start, end)
    todo = tuple(iv for iv in intervals if iv.start not in existing)
    return BackfillPlan(dag_id=dag_id, intervals=tuple(intervals), todo=todo, paused=bool(paused))


def queue_backfill(engine: Any, plan: BackfillPlan, conf: Mapping[str, Any] | None = None) -> list[int]:
    """Queue one ``backfill`` run per interval of ``plan.todo`` (the scheduler runs them) and return their ids.
    The conf is checked against the params once, before any run is created."""
    with engine.connect() as conn:
        sdag = load_serialized(conn, plan.dag_id)
    try:
        sdag.params.resolve(dict(conf or {}))
    except ParamValidationError as exc:
        raise ParamValidationError(f"DAG {plan.dag_id!r}: {' '.join(str(exc).split())}") from None
    ids = []
    for interval in plan.todo:
        run = trigger_dag(
            engine,
            plan.dag_id,
            conf=conf,
            logical_date=interval.start,
            run_id=f"backfill__{interval.start.isoformat()}",
            run_type="backfill",
        )
        ids.append(int(run["id"]))
        if (run["data_interval_start"], run["data_interval_end"]) != (interval.start, interval.end):
            with engine.begin() as conn:
                conn.execute(
                    update(t.dag_run)
                    .where(t.dag_run.c.id == run["id"])
                    .values(data_interval_start=interval.start, data_interval_end=interval.end)
                )
    return ids
