"""What the cross-DAG operators ask the metastore: the state of one run, the states of another DAG's runs or
task instances at given logical dates, and the tasks of a task group. One statement per question, so a sensor
poking every few seconds costs one query a poke.

Called from task processes and the triggerer: :func:`task_metastore` opens the configured metastore for the
length of one question (tasks have no long-lived engine of their own).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from zonda.metastore import tables as t


@contextmanager
def task_metastore() -> Iterator[Any]:
    """The engine of the metastore this process's settings name, disposed when the block ends."""
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore

    metastore = Metastore.from_settings(load_settings())
    try:
        yield metastore.engine
    finally:
        metastore.dispose()


def run_state(engine: Any, dag_id: str, run_id: str) -> str | None:
    """The state of run ``run_id`` of ``dag_id``; None when there is no such run."""
    with engine.connect() as conn:
        return conn.execute(
            select(t.dag_run.c.state).where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.run_id == run_id)
        ).scalar()


def is_paused(engine: Any, dag_id: str) -> bool:
    """Whether ``dag_id`` is paused (False for a DAG the metastore does not list)."""
    with engine.connect() as conn:
        return bool(conn.execute(select(t.dag.c.is_paused).where(t.dag.c.dag_id == dag_id)).scalar())


@dataclass(frozen=True)
class Tally:
    """How many runs (or task instances) were found, per logical date and state."""

    counts: dict[tuple[datetime, str | None, str | None], int]
    """``(logical date, task id or None, state) -> count``."""

    def any_in(self, states: Collection[str]) -> bool:
        return any(state in states for (_, _, state) in self.counts)

    def verdict(
        self,
        dates: Collection[datetime],
        task_ids: Collection[str] | None,
        allowed: Collection[str],
        failed: Collection[str],
        skipped: Collection[str],
    ) -> str | None:
        """``"failed"``, ``"skipped"`` or ``"success"`` once decided (checked in this order, as Airflow's
        sensor does), None while still waiting."""
        if self.any_in(failed):
            return "failed"
        if self.any_in(skipped):
            return "skipped"
        return "success" if self.all_in(allowed, dates, task_ids) else None

    def all_in(self, states: Collection[str], dates: Collection[datetime], task_ids: Collection[str] | None) -> bool:
        """Every date (and every task at it) has at least one row, and every row is in ``states``."""
        if any(state not in states for (_, _, state) in self.counts):
            return False
        present = {(_utc(when), task) for (when, task, _) in self.counts}
        wanted = [(_utc(d), task) for d in dates for task in (task_ids if task_ids is not None else [None])]
        return bool(wanted) and all(key in present for key in wanted)


def _utc(moment: datetime) -> datetime:
    from zonda.timezone import coerce_datetime

    return coerce_datetime(moment)  # type: ignore[return-value]


def tally(engine: Any, dag_id: str, dates: Collection[datetime], task_ids: Collection[str] | None) -> Tally:
    """States of ``dag_id``'s runs at ``dates`` (``task_ids`` None) or of those runs' instances of
    ``task_ids``, counted in one grouped query."""
    run = t.dag_run
    when = [_utc(d) for d in dates]
    if task_ids is None:
        query = (
            select(run.c.logical_date, run.c.state, func.count())
            .where(run.c.dag_id == dag_id, run.c.logical_date.in_(when))
            .group_by(run.c.logical_date, run.c.state)
        )
    else:
        ti = t.task_instance
        query = (
            select(run.c.logical_date, ti.c.task_id, ti.c.state, func.count())
            .select_from(ti.join(run, ti.c.dag_run_id == run.c.id))
            .where(run.c.dag_id == dag_id, run.c.logical_date.in_(when), ti.c.task_id.in_(list(task_ids)))
            .group_by(run.c.logical_date, ti.c.task_id, ti.c.state)
        )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if task_ids is None:
        return Tally({(_utc(r[0]), None, r[1]): int(r[2]) for r in rows})
    return Tally({(_utc(r[0]), r[1], r[2]): int(r[3]) for r in rows})


@dataclass(frozen=True)
class DagShape:
    """A stored DAG's tasks and groups: what ``check_existence`` and ``external_task_group_id`` need."""

    task_groups: dict[str, str | None]
    """task id -> its innermost task group id (None outside groups)."""
    group_parents: dict[str, str | None]

    def has_group(self, group_id: str) -> bool:
        return group_id in self.group_parents

    def group_task_ids(self, group_id: str) -> list[str]:
        """The tasks inside ``group_id`` or a group nested in it."""

        def inside(group: str | None) -> bool:
            for _ in range(len(self.group_parents) + 1):  # bounded walk up the group tree
                if group is None:
                    return False
                if group == group_id:
                    return True
                group = self.group_parents.get(group)
            return False

        return sorted(task for task, group in self.task_groups.items() if inside(group))


def dag_shape(engine: Any, dag_id: str) -> DagShape | None:
    """The stored shape of ``dag_id``; None when the metastore has no such DAG."""
    from zonda.scheduler.serialized import SerializedDag

    with engine.connect() as conn:
        data = conn.execute(select(t.serialized_dag.c.data).where(t.serialized_dag.c.dag_id == dag_id)).scalar()
    if data is None:
        return None
    raw = SerializedDag.from_json(data).data
    return DagShape(
        task_groups={task["task_id"]: task.get("task_group") for task in raw["tasks"]},
        group_parents={gid: info.get("parent") for gid, info in (raw.get("task_groups") or {}).items()},
    )
