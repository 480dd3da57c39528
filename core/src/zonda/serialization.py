"""A DAG's structure as JSON: what the metastore keeps so readers (UI, scheduler) never import user code.

Only structure and settings are kept (ids, edges, operator names, trigger rules, retries, groups, params,
docs), never callables or pickles.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.operators.base import Node

FORMAT_VERSION = 1


def _seconds(value: Any) -> float | None:
    return None if value is None else value.total_seconds()


def expand_spec(task: Any) -> dict[str, Any] | None:
    """What the scheduler needs to expand a mapped task without importing the DAG: for each mapped argument
    either the upstream XCom it comes from or the length of the literal (``references``: the literal holds
    upstream outputs or params, resolved only at run time). A task of a mapped task group has its group's."""
    if not task.is_mapped:
        return None
    from zonda.xcom_arg import XComArg, has_references

    owner = task.mapped_group if task.mapped_group is not None else task

    def describe(value: Any) -> dict[str, Any]:
        if isinstance(value, XComArg):
            return {"xcom": {"task_id": value.operator.task_id, "key": value.key}}
        try:
            described: dict[str, Any] = {"length": len(value)}
        except TypeError:
            return {"length": None}
        if has_references(value):
            described["references"] = True
        return described

    if owner.expand_kwargs_input is not None:
        return {"kind": "expand_kwargs", "args": {"kwargs": describe(owner.expand_kwargs_input)}}
    return {"kind": "expand", "args": {name: describe(value) for name, value in owner.expand_input.items()}}


def parse_time_map_count(spec: dict[str, Any] | None) -> int | None:
    """How many instances a mapped task has, when its :func:`expand_spec` fixes that in the DAG file (literal
    lists only), else None. Such a task gets its instances when its run is created, as in Airflow, so a
    branch or an upstream failure settles each of them (``task[0]``, ``task[1]``...), not one placeholder."""
    if spec is None:
        return None
    lengths = []
    for arg in spec["args"].values():
        if "xcom" in arg or arg.get("references") or arg.get("length") is None:
            return None
        lengths.append(int(arg["length"]))
    if spec["kind"] == "expand_kwargs":
        return lengths[0]
    return math.prod(lengths)


def serialize_task(task: Node) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "operator": task.operator_name,  # type: ignore[attr-defined]
        "module": getattr(task, "operator_class", type(task)).__module__,
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
        "pool_slots": getattr(task, "pool_slots", 1),
        "weight_rule": getattr(task, "weight_rule", "downstream"),
        "retry_exponential_backoff": bool(getattr(task, "retry_exponential_backoff", False)),
        "max_retry_delay": _seconds(getattr(task, "max_retry_delay", None)),
        "executor_config": _safe(getattr(task, "executor_config", None) or {}),
        "expand": expand_spec(task),
        "mapped_group": task.mapped_group.group_id if task.mapped_group is not None else None,
        "task_display_name": getattr(task, "task_display_name", None),
        "map_index_template": getattr(task, "map_index_template", None),
        "callbacks": _callbacks(task, TASK_CALLBACKS) + _email_alerts(task),
        **_roles(task),
        **_task_limits(task),
    }


def _task_limits(task: Node) -> dict[str, int]:
    """``max_active_tis_per_dag`` / ``_per_dagrun``, only when set (DAGs without them keep their hash)."""
    names = ("max_active_tis_per_dag", "max_active_tis_per_dagrun")
    return {name: int(value) for name in names if (value := getattr(task, name, None)) is not None}


def _roles(task: Node) -> dict[str, bool]:
    """Setup / teardown roles, only when set: the JSON (and so the hash) of DAGs without them is unchanged."""
    roles = {
        "is_setup": bool(getattr(task, "is_setup", False)),
        "is_teardown": bool(getattr(task, "is_teardown", False)),
        "on_failure_fail_dagrun": bool(getattr(task, "on_failure_fail_dagrun", False)),
    }
    return {key: value for key, value in roles.items() if value}


#: Callbacks the scheduler must have run elsewhere when it ends a try itself (the task process died), and
#: the DAG-run callbacks it asks for when a run ends: their presence is serialized (never the functions), so
#: the scheduler knows whether to ask the DAG processor at all.
TASK_CALLBACKS = ("on_failure_callback", "on_retry_callback")
DAG_CALLBACKS = ("on_success_callback", "on_failure_callback")


def _email_alerts(task: Any) -> list[str]:
    """``email_on_failure`` / ``email_on_retry`` when the task would send them: the scheduler then asks the DAG
    processor to send the mail of a try it ended itself, as it asks for the callbacks."""
    values = getattr(task, "partial_kwargs", None) if getattr(task, "is_mapped", False) else None

    def get(name: str, default: Any = None) -> Any:
        return values.get(name, default) if values is not None else getattr(task, name, default)

    if not get("email"):
        return []
    return [name for name in ("email_on_failure", "email_on_retry") if get(name, True)]


def _callbacks(owner: Any, names: tuple[str, ...]) -> list[str]:
    values = getattr(owner, "partial_kwargs", None)
    present = []
    for name in names:
        value = values.get(name) if values is not None else getattr(owner, name, None)
        if value:
            present.append(name)
    return present


def serialize_dag(dag: DAG) -> tuple[str, str]:
    """The DAG as a JSON text and the MD5 of that text (to skip rewriting an unchanged DAG)."""
    from zonda import serde

    payload = {
        "format": FORMAT_VERSION,
        "dag_id": dag.dag_id,
        "dag_display_name": dag.dag_display_name,
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
        "tasks": _with_priority(dag, [serialize_task(t) for t in dag.topological_order()]),
        "dagrun_timeout": _seconds(dag.dagrun_timeout),
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "callbacks": _callbacks(dag, DAG_CALLBACKS),
        "edge_labels": sorted([up, down, info["label"]] for (up, down), info in dag.edge_info.items()),
    }
    if dag.deadline:
        payload["deadlines"] = [alert.serialize() for alert in dag.deadline]
    text = serde.dumps(payload)
    return text, hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _with_priority(dag: DAG, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's ``priority_weight_total`` by its weight rule, computed here once (by the decision engine,
    which orders ``dags test`` the same way) so the scheduler just orders by it."""
    from zonda.decision_engine import DagShape

    shape = DagShape.from_dag(dag)
    for task in tasks:
        task["priority_weight_total"] = shape.tasks[task["task_id"]].priority
    return tasks


def _safe(value: Any) -> Any:
    """Params may hold values JSON cannot express; keep their repr rather than fail the whole DAG."""
    from zonda import serde

    try:
        serde.dumps(value)
        return value
    except Exception:
        return repr(value)
