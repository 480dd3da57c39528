"""What the task instance page shows beside its log: its XComs and its rendered template fields.

Values are returned as stored JSON decoded (or the raw text when it is not JSON) with secrets masked, for the
caller to show as text; nothing here renders or evaluates them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from zonda.masking import redact
from zonda.metastore import tables as t
from zonda.operations.dag_runs import find_run


@dataclass(frozen=True)
class XComEntry:
    key: str
    value: Any


@dataclass(frozen=True)
class TaskInstanceDetails:
    xcoms: tuple[XComEntry, ...]
    #: Template field name -> its rendered value (empty before the task rendered them).
    rendered_fields: dict[str, Any]


def decoded(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def task_instance_details(
    engine: Any, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> TaskInstanceDetails:
    """The XComs and rendered fields of one instance (masked); NotFound for an unknown DAG or run."""
    x, ti = t.xcom, t.task_instance
    with engine.connect() as conn:
        run = find_run(conn, dag_id, run_id)
        rendered = conn.execute(
            select(ti.c.rendered_fields).where(
                ti.c.dag_run_id == run.id, ti.c.task_id == task_id, ti.c.map_index == map_index
            )
        ).scalar()
        rows = conn.execute(
            select(x.c.key, x.c.value)
            .where(x.c.dag_run_id == run.id, x.c.task_id == task_id, x.c.map_index == map_index)
            .order_by(x.c.key)
        ).all()
    fields = decoded(rendered)
    return TaskInstanceDetails(
        xcoms=tuple(XComEntry(r.key, redact(decoded(r.value), r.key)) for r in rows),
        rendered_fields=redact(fields) if isinstance(fields, dict) else {},
    )
