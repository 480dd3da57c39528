"""The workload of a task instance row: what the scheduler hands an executor for one try.

One place, because two paths build it: queueing a scheduled instance, and adopting one a stopped scheduler
queued (:mod:`zonda.scheduler.adoption`); both must name the same try the worker's claim checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zonda.metastore import tables as t

if TYPE_CHECKING:
    from zonda.executors.base import Workload

_ti = t.task_instance

#: The columns :func:`workload_of` reads (with ``serialized_dag.fileloc``, joined by the caller).
WORKLOAD_COLUMNS = (
    _ti.c.id,
    _ti.c.dag_id,
    _ti.c.run_id,
    _ti.c.task_id,
    _ti.c.map_index,
    _ti.c.try_number,
    _ti.c.queue,
    _ti.c.priority_weight,
    _ti.c.dag_run_id,
    _ti.c.next_method,
    t.serialized_dag.c.fileloc,
)


def workload_of(row: Any, *, next_try: bool) -> Workload:
    """The workload of ``row``. ``next_try``: the instance is (being) queued, so the workload is for the try
    after the row's, unless it resumes a deferral (which continues its try); otherwise the row's own try."""
    from zonda.executors.base import Workload

    try_number = (row.try_number or 0) + (1 if next_try and not row.next_method else 0)
    return Workload(
        ti_id=row.id,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        try_number=try_number,
        fileloc=row.fileloc or "",
        queue=row.queue or "default",
        priority=row.priority_weight or 1,
        dag_run_id=row.dag_run_id,
    )
