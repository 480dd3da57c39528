"""A DAG's structure as JSON: what the metastore keeps so readers (UI, scheduler) never import user code.

Only structure and settings are kept (ids, edges, operator names, trigger rules, retries, groups, params,
docs), never callables or pickles.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.operators.base import Node

FORMAT_VERSION = 1


def _seconds(value: Any) -> float | None:
    return None if value is None else value.total_seconds()


def serialize_task(task: Node) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "operator": task.operator_name,  # type: ignore[attr-defined]
        "module": (task.operator_class if task.is_mapped else type(task)).__module__,  # type: ignore[attr-defined]
        "is_mapped": task.is_mapped,
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "trigger_rule": str(task.trigger_rule),
        "retries": task.retries,  # type: ignore[attr-defined]
        "retry_delay": _seconds(task.retry_delay),  # type: ignore[attr-defined]
        "execution_timeout": _seconds(task.execution_timeout),  # type: ignore[attr-defined]
        "pool": task.pool,  # type: ignore[attr-defined]
        "queue": task.queue,  # type: ignore[attr-defined]
        "priority_weight": task.priority_weight,  # type: ignore[attr-defined]
        "depends_on_past": task.depends_on_past,  # type: ignore[attr-defined]
        "task_group": task.task_group.group_id if task.task_group else None,
        "template_fields": list(task.template_fields),  # type: ignore[attr-defined]
        "ui_color": task.ui_color,  # type: ignore[attr-defined]
        "doc_md": task.doc_md,  # type: ignore[attr-defined]
    }


def serialize_dag(dag: DAG) -> tuple[str, str]:
    """The DAG as a JSON text and the MD5 of that text (to skip rewriting an unchanged DAG)."""
    from zonda import serde

    payload = {
        "format": FORMAT_VERSION,
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "description": dag.description,
        "doc_md": dag.doc_md,
        "schedule": dag.timetable.serialize(),
        "start_date": dag.start_date,
        "end_date": dag.end_date,
        "catchup": dag.catchup,
        "tags": dag.tags,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "params": _safe(dag.params.dump()),
        "task_groups": {
            gid: {"tooltip": g.tooltip, "parent": g.parent_group.group_id if g.parent_group else None}
            for gid, g in dag.task_groups.items()
        },
        "tasks": [serialize_task(t) for t in dag.topological_order()],
    }
    text = serde.dumps(payload)
    return text, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _safe(value: Any) -> Any:
    """Params may hold values JSON cannot express; keep their repr rather than fail the whole DAG."""
    from zonda import serde

    try:
        serde.dumps(value)
        return value
    except Exception:
        return repr(value)
