"""A DAG as the scheduler sees it: the JSON the DAG processor stored, with typed accessors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from zonda.params import NOTSET, Param, ParamsDict
from zonda.schedule import Timetable, timetable_from_dict
from zonda.trigger_rule import TriggerRule

if TYPE_CHECKING:
    from zonda.decision_engine import DagShape


def decode_serialized(text: str) -> dict[str, Any]:
    """The stored JSON of a DAG as plain data, without building its tasks (what a reader of a big DAG's
    structure alone wants: building 1,000 tasks costs more than parsing them)."""
    from zonda import serde

    return serde.loads(text) if "__zonda__" in text else json.loads(text)


@dataclass(frozen=True)
class SerializedTask:
    task_id: str
    operator: str
    upstream: frozenset[str]
    downstream: frozenset[str]
    trigger_rule: TriggerRule
    retries: int
    retry_delay: float
    retry_exponential_backoff: bool
    max_retry_delay: float | None
    execution_timeout: float | None
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    depends_on_past: bool
    expand: dict[str, Any] | None
    #: Which of the task's callbacks are set (``on_failure_callback``, ``on_retry_callback``).
    callbacks: frozenset[str] = frozenset()
    is_setup: bool = False
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False
    max_active_tis_per_dag: int | None = None
    max_active_tis_per_dagrun: int | None = None
    #: The mapped task group the task sits in (its expansion is the group's), if any.
    mapped_group: str | None = None
    task_display_name: str | None = None

    @property
    def is_mapped(self) -> bool:
        return self.expand is not None


def _task(raw: dict[str, Any]) -> SerializedTask:
    return SerializedTask(
        task_id=raw["task_id"],
        operator=raw.get("operator", ""),
        upstream=frozenset(raw.get("upstream", ())),
        downstream=frozenset(raw.get("downstream", ())),
        trigger_rule=TriggerRule.parse(raw.get("trigger_rule", "all_success")),
        retries=int(raw.get("retries") or 0),
        retry_delay=float(raw.get("retry_delay") or 0.0),
        retry_exponential_backoff=bool(raw.get("retry_exponential_backoff")),
        max_retry_delay=raw.get("max_retry_delay"),
        execution_timeout=raw.get("execution_timeout"),
        pool=raw.get("pool") or "default_pool",
        pool_slots=int(raw.get("pool_slots") or 1),
        queue=raw.get("queue") or "default",
        priority_weight=int(raw.get("priority_weight_total") or raw.get("priority_weight") or 1),
        depends_on_past=bool(raw.get("depends_on_past")),
        expand=raw.get("expand"),
        callbacks=frozenset(raw.get("callbacks") or ()),
        is_setup=bool(raw.get("is_setup")),
        is_teardown=bool(raw.get("is_teardown")),
        on_failure_fail_dagrun=bool(raw.get("on_failure_fail_dagrun")),
        max_active_tis_per_dag=raw.get("max_active_tis_per_dag"),
        max_active_tis_per_dagrun=raw.get("max_active_tis_per_dagrun"),
        mapped_group=raw.get("mapped_group"),
        task_display_name=raw.get("task_display_name"),
    )


@dataclass
class SerializedDag:
    dag_id: str
    fileloc: str
    data: dict[str, Any]

    @classmethod
    def from_json(cls, text: str) -> SerializedDag:
        data = decode_serialized(text)
        return cls(dag_id=data["dag_id"], fileloc=data.get("fileloc") or "", data=data)

    @cached_property
    def tasks(self) -> dict[str, SerializedTask]:
        """The tasks, built on first use: triggering a run reads only the params and the schedule, and building
        a big DAG's tasks costs more than parsing its JSON."""
        return {raw["task_id"]: _task(raw) for raw in self.data["tasks"]}

    @property
    def deadlines(self) -> list[dict[str, Any]]:
        """The DAG's deadline alerts as :meth:`zonda.deadlines.DeadlineAlert.serialize` wrote them."""
        return list(self.data.get("deadlines") or ())

    @property
    def callbacks(self) -> frozenset[str]:
        """Which DAG-run callbacks are set (``on_success_callback``, ``on_failure_callback``)."""
        return frozenset(self.data.get("callbacks") or ())

    @property
    def order(self) -> list[str]:
        """Task ids in dependency order (the processor stores them topologically sorted)."""
        return [t["task_id"] for t in self.data["tasks"]]

    @cached_property
    def timetable(self) -> Timetable:
        return timetable_from_dict(self.data.get("schedule"))

    @property
    def start_date(self) -> datetime | None:
        return self.data.get("start_date")

    @property
    def end_date(self) -> datetime | None:
        return self.data.get("end_date")

    @property
    def catchup(self) -> bool:
        return bool(self.data.get("catchup"))

    @property
    def max_active_runs(self) -> int | None:
        return self.data.get("max_active_runs")

    @property
    def max_active_tasks(self) -> int | None:
        return self.data.get("max_active_tasks")

    @property
    def dagrun_timeout(self) -> timedelta | None:
        seconds = self.data.get("dagrun_timeout")
        return timedelta(seconds=seconds) if seconds else None

    @cached_property
    def shape(self) -> DagShape:
        """The tasks as the decision engine sees them (built once per loaded version)."""
        from zonda.decision_engine import DagShape

        return DagShape.from_serialized(self)

    @cached_property
    def leaves(self) -> list[str]:
        return [tid for tid, t in self.tasks.items() if not t.downstream]

    @cached_property
    def params(self) -> ParamsDict:
        """The DAG's params rebuilt from their dump, to validate a trigger's conf without the DAG file."""
        params = ParamsDict()
        raw = self.data.get("params") or {}
        if isinstance(raw, dict):
            for name, dumped in raw.items():
                default = dumped.get("value") if dumped.get("has_default", True) else NOTSET
                params[name] = Param(default, description=dumped.get("description"), **(dumped.get("schema") or {}))
        return params
