"""A task's own concurrency limits, Airflow's ``max_active_tis_per_dag`` and ``max_active_tis_per_dagrun``.

``max_active_tis_per_dag=2`` on a task that calls a rate-limited API keeps at most two of its instances queued or
running over all runs of the DAG (a mapped task's instances included); ``max_active_tis_per_dagrun`` does the same
within one run. The scheduler asks :meth:`TaskSlots.blocker` before queueing an instance and :meth:`TaskSlots.take`
after; ``zonda tasks why`` asks the same question to name the limit that holds an instance back. Only tasks that
set a limit are counted, so DAGs without them cost nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from zonda.metastore import tables as t
from zonda.state import ACTIVE_STATES, sql_values

if TYPE_CHECKING:
    from zonda.scheduler.serialized import SerializedTask

PER_DAG = "max_active_tis_per_dag"
PER_DAGRUN = "max_active_tis_per_dagrun"


def has_limit(task: SerializedTask | None) -> bool:
    return task is not None and (task.max_active_tis_per_dag is not None or task.max_active_tis_per_dagrun is not None)


@dataclass(frozen=True)
class Blocker:
    """Which limit is reached: its name, the instances active, the limit."""

    limit_name: str
    active: int
    limit: int


@dataclass
class TaskSlots:
    """Queued or running instances of the limited tasks: per DAG and task, and per run and task."""

    per_dag: dict[tuple[str, str], int] = field(default_factory=dict)
    per_run: dict[tuple[int, str], int] = field(default_factory=dict)

    @classmethod
    def count(cls, conn: Any, limited: Iterable[tuple[str, str]]) -> TaskSlots:
        """One grouped count over the ``(dag_id, task_id)`` pairs ``limited``; nothing is read when there are none."""
        pairs = set(limited)
        slots = cls()
        if not pairs:
            return slots
        ti = t.task_instance
        query = (
            select(ti.c.dag_id, ti.c.task_id, ti.c.dag_run_id, func.count())
            .where(
                ti.c.state.in_(sql_values(ACTIVE_STATES)),
                ti.c.dag_id.in_(sorted({dag_id for dag_id, _ in pairs})),
                ti.c.task_id.in_(sorted({task_id for _, task_id in pairs})),
            )
            .group_by(ti.c.dag_id, ti.c.task_id, ti.c.dag_run_id)
        )
        for dag_id, task_id, dag_run_id, count in conn.execute(query):
            if (dag_id, task_id) in pairs:
                slots.per_dag[(dag_id, task_id)] = slots.per_dag.get((dag_id, task_id), 0) + int(count)
                slots.per_run[(dag_run_id, task_id)] = int(count)
        return slots

    def blocker(self, task: SerializedTask, dag_id: str, dag_run_id: int) -> Blocker | None:
        """The limit one more instance of ``task`` in run ``dag_run_id`` would pass; None when it may be queued."""
        per_dag = task.max_active_tis_per_dag
        active = self.per_dag.get((dag_id, task.task_id), 0)
        if per_dag is not None and active >= per_dag:
            return Blocker(PER_DAG, active, per_dag)
        per_run = task.max_active_tis_per_dagrun
        active = self.per_run.get((dag_run_id, task.task_id), 0)
        if per_run is not None and active >= per_run:
            return Blocker(PER_DAGRUN, active, per_run)
        return None

    def take(self, task_id: str, dag_id: str, dag_run_id: int) -> None:
        """Count one more instance as queued."""
        self.per_dag[(dag_id, task_id)] = self.per_dag.get((dag_id, task_id), 0) + 1
        self.per_run[(dag_run_id, task_id)] = self.per_run.get((dag_run_id, task_id), 0) + 1
