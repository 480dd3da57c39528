"""Paged, filtered listings of the big tables (DAGs, runs, task instances, XComs), for the REST API.

Each listing is one statement for the page and at most one for its count (:mod:`zonda.operations.paging`), and
one more only when a page is empty, to tell "no rows" from "no such DAG" (404 with suggestions). Filters are
applied in SQL: the database returns only the rows of the page. Each listing takes ``visible_to`` (the user
asking): with per-DAG grants their clause (:func:`~zonda.operations.dag_grants.visible_dags_clause`, a correlated
``EXISTS``) joins the page's statement, so a user never sees a row of a DAG their grants hide; without grants it
adds nothing, not even a statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, or_, select

from zonda.metastore import tables as t
from zonda.operations.dag_grants import visible_dags_clause
from zonda.operations.dag_runs import DagRunRecord
from zonda.operations.dag_runs import record as run_record
from zonda.operations.dags import DagRecord, dag_record, require_dag
from zonda.operations.paging import Listing, Page, PageRequest, SortColumn, fetch_page, pattern_filter
from zonda.operations.task_instances_read import RECORD_COLUMNS as TI_COLUMNS
from zonda.operations.task_instances_read import TaskInstanceRecord
from zonda.operations.task_instances_read import record as ti_record


@dataclass(frozen=True)
class DateRange:
    """``gte`` <= value <= ``lte``; either end open when None."""

    gte: datetime | None = None
    lte: datetime | None = None

    def clauses(self, column: Any) -> list[Any]:
        found = []
        if self.gte is not None:
            found.append(column >= self.gte)
        if self.lte is not None:
            found.append(column <= self.lte)
        return found


def _nullable(column: Any) -> SortColumn:
    return SortColumn(column, nullable=True)


# --- DAGs -----------------------------------------------------------------------------------------------------

DAG_LISTING = Listing(
    sortable={
        "dag_id": SortColumn(t.dag.c.dag_id),
        "next_dagrun": _nullable(t.dag.c.next_dagrun),
        "last_parsed_time": _nullable(t.dag.c.last_parsed_time),
        "is_paused": SortColumn(t.dag.c.is_paused),
    },
    default_order="dag_id",
    tiebreak=t.dag.c.dag_id,
)


@dataclass(frozen=True)
class DagFilter:
    dag_id_pattern: str | None = None
    #: DAGs with any of these tags.
    tags: tuple[str, ...] = ()
    paused: bool | None = None
    only_active: bool = True


def _literal_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible(query: Any, visible_to: Any, dag_id_column: Any) -> Any:
    """``query`` narrowed to the DAGs ``visible_to`` may see (None: nobody is asking, e.g. the CLI: every DAG)."""
    return query if visible_to is None else query.where(visible_dags_clause(visible_to, dag_id_column))


def page_dags(engine: Any, request: PageRequest, where: DagFilter, *, visible_to: Any = None) -> Page[DagRecord]:
    dag = t.dag
    query = _visible(select(dag), visible_to, dag.c.dag_id)
    if where.only_active:
        query = query.where(dag.c.is_active.is_(True))
    if where.paused is not None:
        query = query.where(dag.c.is_paused.is_(where.paused))
    if where.dag_id_pattern:
        query = query.where(pattern_filter(dag.c.dag_id, where.dag_id_pattern, "dag_id_pattern"))
    if where.tags:
        # Tags are stored as a JSON list: a tag matches as its quoted JSON string, taken literally.
        query = query.where(
            or_(*(dag.c.tags.like(f"%{_literal_like(json.dumps(tag))}%", escape="\\") for tag in where.tags))
        )
    with engine.connect() as conn:
        return fetch_page(conn, query, DAG_LISTING, request, dag_record)


# --- DAG runs -------------------------------------------------------------------------------------------------

RUN_LISTING = Listing(
    sortable={
        "id": SortColumn(t.dag_run.c.id),
        "run_id": SortColumn(t.dag_run.c.run_id),
        "dag_id": SortColumn(t.dag_run.c.dag_id),
        "state": SortColumn(t.dag_run.c.state),
        "logical_date": _nullable(t.dag_run.c.logical_date),
        "start_date": _nullable(t.dag_run.c.start_date),
        "end_date": _nullable(t.dag_run.c.end_date),
        "updated_at": SortColumn(t.dag_run.c.updated_at),
    },
    default_order="id",
    tiebreak=t.dag_run.c.id,
)


@dataclass(frozen=True)
class RunFilter:
    #: None: the runs of every DAG (Airflow's ``~``).
    dag_id: str | None = None
    states: tuple[str, ...] = ()
    run_types: tuple[str, ...] = ()
    run_id_pattern: str | None = None
    logical_date: DateRange = field(default_factory=DateRange)
    start_date: DateRange = field(default_factory=DateRange)
    end_date: DateRange = field(default_factory=DateRange)
    updated_at: DateRange = field(default_factory=DateRange)


def page_runs(engine: Any, request: PageRequest, where: RunFilter, *, visible_to: Any = None) -> Page[DagRunRecord]:
    from zonda.operations.dag_runs import RUN_STATES

    dr = t.dag_run
    _known_states(where.states, RUN_STATES, "run")
    query = _visible(select(dr), visible_to, dr.c.dag_id)
    if where.dag_id is not None:
        query = query.where(dr.c.dag_id == where.dag_id)
    if where.states:
        query = query.where(dr.c.state.in_(where.states))
    if where.run_types:
        query = query.where(dr.c.run_type.in_(where.run_types))
    if where.run_id_pattern:
        query = query.where(pattern_filter(dr.c.run_id, where.run_id_pattern, "run_id_pattern"))
    for name in ("logical_date", "start_date", "end_date", "updated_at"):
        query = query.where(*getattr(where, name).clauses(dr.c[name]))
    with engine.connect() as conn:
        page = fetch_page(conn, query, RUN_LISTING, request, run_record)
        if not page.items and where.dag_id is not None:
            require_dag(conn, where.dag_id)
    return page


def _known_states(states: tuple[str, ...], known: tuple[str, ...], what: str) -> None:
    from zonda.exceptions import OperationError

    unknown = [s for s in states if s not in known]
    if unknown:
        raise OperationError(f"unknown {what} state {unknown[0][:40]!r}; the states are {', '.join(known)}")


# --- task instances -------------------------------------------------------------------------------------------

_ti = t.task_instance
TASK_INSTANCE_LISTING = Listing(
    sortable={
        "id": SortColumn(_ti.c.id),
        "task_id": SortColumn(_ti.c.task_id),
        "run_id": SortColumn(_ti.c.run_id),
        "dag_id": SortColumn(_ti.c.dag_id),
        "map_index": SortColumn(_ti.c.map_index),
        "state": _nullable(_ti.c.state),
        "start_date": _nullable(_ti.c.start_date),
        "end_date": _nullable(_ti.c.end_date),
        "duration": _nullable(_ti.c.duration),
        "priority_weight": _nullable(_ti.c.priority_weight),
        "updated_at": SortColumn(_ti.c.updated_at),
    },
    default_order="id",
    tiebreak=_ti.c.id,
)


@dataclass(frozen=True)
class TaskInstanceFilter:
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    #: ``none`` matches instances not decided yet.
    states: tuple[str, ...] = ()
    task_id_pattern: str | None = None
    pools: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    map_index: int | None = None
    #: Only the expanded instances of mapped tasks (map index 0 and up).
    mapped_only: bool = False
    start_date: DateRange = field(default_factory=DateRange)
    end_date: DateRange = field(default_factory=DateRange)
    updated_at: DateRange = field(default_factory=DateRange)
    duration_gte: float | None = None
    duration_lte: float | None = None


def task_instance_states() -> tuple[str, ...]:
    from zonda.state import TaskInstanceState

    return (*(s.value for s in TaskInstanceState), "none")


def page_task_instances(
    engine: Any, request: PageRequest, where: TaskInstanceFilter, *, visible_to: Any = None
) -> Page[TaskInstanceRecord]:
    ti = _ti
    _known_states(where.states, task_instance_states(), "task instance")
    query = _visible(select(*TI_COLUMNS), visible_to, ti.c.dag_id)
    for name in ("dag_id", "run_id", "task_id", "map_index"):
        if getattr(where, name) is not None:
            query = query.where(ti.c[name] == getattr(where, name))
    if where.mapped_only:
        query = query.where(ti.c.map_index >= 0)
    if where.states:
        decided = [s for s in where.states if s != "none"]
        either = [ti.c.state.in_(decided)] if decided else []
        if "none" in where.states:
            either.append(ti.c.state.is_(None))
        query = query.where(or_(*either))
    if where.task_id_pattern:
        query = query.where(pattern_filter(ti.c.task_id, where.task_id_pattern, "task_id_pattern"))
    if where.pools:
        query = query.where(ti.c.pool.in_(where.pools))
    if where.queues:
        query = query.where(ti.c.queue.in_(where.queues))
    for name in ("start_date", "end_date", "updated_at"):
        query = query.where(*getattr(where, name).clauses(ti.c[name]))
    if where.duration_gte is not None:
        query = query.where(ti.c.duration >= where.duration_gte)
    if where.duration_lte is not None:
        query = query.where(ti.c.duration <= where.duration_lte)
    with engine.connect() as conn:
        page = fetch_page(conn, query, TASK_INSTANCE_LISTING, request, ti_record)
        if not page.items and where.dag_id is not None:
            _require_parent(conn, where.dag_id, where.run_id)
    return page


def _require_parent(conn: Any, dag_id: str, run_id: str | None) -> None:
    """NotFound when the DAG (or its run) does not exist: an empty page of an unknown parent is a 404."""
    if run_id is None:
        require_dag(conn, dag_id)
        return
    from zonda.operations.dag_runs import find_run

    find_run(conn, dag_id, run_id)


# --- XComs ----------------------------------------------------------------------------------------------------

_xcom = t.xcom
XCOM_LISTING = Listing(
    sortable={
        "key": SortColumn(_xcom.c.key),
        "task_id": SortColumn(_xcom.c.task_id),
        "map_index": SortColumn(_xcom.c.map_index),
        "timestamp": SortColumn(_xcom.c.timestamp),
    },
    default_order="timestamp",
    # The primary key has four columns; packed in one text they keep a keyset position one value everywhere.
    tiebreak=cast(_xcom.c.dag_run_id, String())
    + "/"
    + _xcom.c.task_id
    + "/"
    + cast(_xcom.c.map_index, String())
    + "/"
    + _xcom.c.key,
)


@dataclass(frozen=True)
class XComRecord:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str
    timestamp: datetime


@dataclass(frozen=True)
class XComFilter:
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    key: str | None = None


def _xcom_record(row: Any) -> XComRecord:
    return XComRecord(row.dag_id, row.run_id, row.task_id, row.map_index, row.key, row.timestamp)


def page_xcoms(engine: Any, request: PageRequest, where: XComFilter, *, visible_to: Any = None) -> Page[XComRecord]:
    """XCom entries without their values (a listing may span thousands; :func:`get_xcom` reads one value)."""
    x = _xcom
    query = select(x.c.dag_id, x.c.run_id, x.c.task_id, x.c.map_index, x.c.key, x.c.timestamp)
    query = _visible(query, visible_to, x.c.dag_id)
    for name in ("dag_id", "run_id", "task_id", "map_index", "key"):
        if getattr(where, name) is not None:
            query = query.where(x.c[name] == getattr(where, name))
    with engine.connect() as conn:
        page = fetch_page(conn, query, XCOM_LISTING, request, _xcom_record)
        if not page.items and where.dag_id is not None:
            _require_parent(conn, where.dag_id, where.run_id)
    return page


@dataclass(frozen=True)
class XComValue:
    entry: XComRecord
    #: The stored JSON decoded (the raw text when it is not JSON), secrets masked.
    value: Any


def get_xcom(engine: Any, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> XComValue:
    """One XCom entry with its value; NotFound for an unknown run or entry (one statement when it exists)."""
    from zonda.exceptions import NotFound
    from zonda.masking import redact
    from zonda.operations.task_instance_details import decoded

    x = _xcom
    with engine.connect() as conn:
        row = conn.execute(
            select(x).where(
                x.c.dag_id == dag_id,
                x.c.run_id == run_id,
                x.c.task_id == task_id,
                x.c.map_index == map_index,
                x.c.key == key,
            )
        ).first()
        if row is None:
            from zonda.operations.dag_runs import find_run

            find_run(conn, dag_id, run_id)
            raise NotFound(
                f"{dag_id}.{task_id}" + (f"[{map_index}]" if map_index >= 0 else "") + f" in run {run_id!r} has no "
                f"XCom {key!r}; GET .../taskInstances/{task_id}/xcomEntries lists its keys"
            )
    return XComValue(_xcom_record(row), redact(decoded(row.value), key))
