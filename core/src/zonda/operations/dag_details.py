"""What the web server's details tab shows of one DAG: the stored DAG row (schedule, owners, tags, next run) and
from the serialized DAG its documentation, params with their schema, and the settings that shape its runs.

Two statements; nothing from the DAG file is imported or run. ``doc_md`` and descriptions are returned as the
author wrote them: rendering them safely is the presenter's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zonda.operations.dags import DagRecord, get_dag, serialized_dag


@dataclass(frozen=True)
class ParamDetails:
    name: str
    has_default: bool
    default: Any
    description: str | None
    #: The JSON-schema keywords the param validates against (``type``, ``enum``, ``minimum``...).
    schema: dict[str, Any]

    @property
    def default_text(self) -> str:
        """The default as JSON text (values JSON cannot hold, such as dates, as their string)."""
        return json.dumps(self.default, default=str, ensure_ascii=False)

    @property
    def schema_text(self) -> str:
        return json.dumps(self.schema, default=str, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class DagDetails:
    dag: DagRecord
    doc_md: str | None
    start_date: datetime | None
    end_date: datetime | None
    catchup: bool
    max_active_runs: int | None
    max_active_tasks: int | None
    dagrun_timeout_seconds: float | None
    task_count: int
    params: list[ParamDetails]


def dag_details(engine: Any, dag_id: str) -> DagDetails:
    """The details of ``dag_id``; :class:`~zonda.exceptions.DagNotFound` when the metastore has none."""
    record = get_dag(engine, dag_id, recent=0)
    sdag = serialized_dag(engine, dag_id)
    data = sdag.data
    raw_params = data.get("params") if isinstance(data.get("params"), dict) else {}
    params = [
        ParamDetails(
            name=str(name),
            has_default=bool(dumped.get("has_default", True)),
            default=dumped.get("value"),
            description=dumped.get("description"),
            schema=dict(dumped.get("schema") or {}),
        )
        for name, dumped in raw_params.items()
        if isinstance(dumped, dict)
    ]
    timeout = sdag.dagrun_timeout
    return DagDetails(
        dag=record,
        doc_md=data.get("doc_md"),
        start_date=sdag.start_date,
        end_date=sdag.end_date,
        catchup=sdag.catchup,
        max_active_runs=sdag.max_active_runs,
        max_active_tasks=sdag.max_active_tasks,
        dagrun_timeout_seconds=timeout.total_seconds() if timeout else None,
        task_count=len(sdag.tasks),
        params=params,
    )


__all__ = ["DagDetails", "ParamDetails", "dag_details"]
