"""Adopting the work of a scheduler that is gone, instead of queueing it a second time.

A scheduler that stops (or dies) leaves task instances ``queued`` or ``running`` with its job id. When its
executor's work outlives it (a Celery message waits on the broker; a Celery worker runs the task), the next
scheduler takes those instances over: it asks its executor to :meth:`~zonda.executors.base.BaseExecutor.adopt`
them and moves ``queued_by_job_id`` to itself (a compare-and-set). Nothing is sent again, and the adopter's
executor reports their ends. Only instances whose scheduler ran an executor of the same class are offered:
a LocalExecutor's queue died with its scheduler, and those instances are queued again
(:func:`~zonda.operations.transitions.reset_orphaned_tis`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from zonda.metastore import tables as t
from zonda.operations import transitions
from zonda.scheduler.workloads import WORKLOAD_COLUMNS, workload_of
from zonda.state import ACTIVE_STATES, TaskInstanceState, sql_values

if TYPE_CHECKING:
    from zonda.executors.base import BaseExecutor

log = logging.getLogger("zonda.scheduler")

#: Most orphans offered to the executor per pass (bounded; the rest are adopted on the next check).
ADOPT_BATCH = 1000


def adopt_orphans(
    conn: Any, executor: BaseExecutor, *, job_id: int, alive_job_ids: Collection[int], now: datetime
) -> int:
    """Offer the active instances of gone schedulers that ran ``type(executor)`` to ``executor``; those it
    takes become this scheduler's (``job_id``). Returns how many were adopted."""
    ti, job, sd = t.task_instance, t.job, t.serialized_dag
    rows = conn.execute(
        select(*WORKLOAD_COLUMNS, ti.c.state, ti.c.queued_by_job_id)
        .join(job, job.c.id == ti.c.queued_by_job_id)
        .join(sd, sd.c.dag_id == ti.c.dag_id, isouter=True)
        .where(
            ti.c.state.in_(sql_values(ACTIVE_STATES)),
            ti.c.queued_by_job_id.notin_(list(alive_job_ids)),
            job.c.executor_class == type(executor).__name__,
        )
        .order_by(ti.c.id)
        .limit(ADOPT_BATCH)
    ).all()
    if not rows:
        return 0
    by_id = {row.id: row for row in rows}
    taken = executor.adopt([workload_of(row, next_try=row.state == TaskInstanceState.QUEUED) for row in rows])
    by_job: dict[int, list[int]] = {}
    for workload in taken:
        by_job.setdefault(by_id[workload.ti_id].queued_by_job_id, []).append(workload.ti_id)
    adopted = 0
    for from_job_id, ids in by_job.items():
        adopted += transitions.adopt_orphaned_tis(conn, ids, from_job_id=from_job_id, job_id=job_id, now=now)
    if adopted:
        log.info(
            "adopted %s task instances from schedulers that stopped (their work is still on the executor)", adopted
        )
    return adopted
