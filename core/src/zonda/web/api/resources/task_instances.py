"""Task instances: list (``~`` for every DAG or run; filters by state, pool, queue, ``task_id_pattern``, dates
and duration), get one (mapped ones by map index), list a mapped task's instances, and clear or mark many at once
with a dry run (the default: nothing changes until ``dry_run`` is false)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.resources.common import (
    DateFilters,
    TaskInstanceChanges,
    changes,
    concrete,
    date_range,
    engine,
    one_or_every,
    viewer,
)
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "TaskInstance"
_LIST = "/dags/{dag_id}/dagRuns/{run_id}/taskInstances"


class TaskInstance(ApiModel):
    dag_id: str
    dag_run_id: str = Field(validation_alias="run_id")
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    operator: str | None
    pool: str
    pool_slots: int
    queue: str | None
    priority_weight: int | None
    hostname: str | None
    pid: int | None
    queued_when: datetime | None = Field(validation_alias="queued_dttm")
    rendered_map_index: str | None = Field(None, description="A mapped instance's `map_index_template`, rendered.")
    task_display_name: str | None = Field(None, description="The task's `task_display_name`, or its id.")


class TaskInstanceCollection(CollectionInfo):
    task_instances: list[TaskInstance]


class TaskInstanceListQuery(ListQuery, DateFilters):
    state: list[str] = Field(default_factory=list, description="Instances in any of these states (`none`: undecided).")
    pool: list[str] = Field(default_factory=list)
    queue: list[str] = Field(default_factory=list)
    task_id_pattern: str | None = Field(None, max_length=250, description="SQL LIKE pattern (`%`, `_`).")
    duration_gte: float | None = Field(None, allow_inf_nan=False)
    duration_lte: float | None = Field(None, allow_inf_nan=False)


class _Selection(ApiModel):
    dry_run: bool = Field(True, description="Only say what would change.")
    task_ids: list[str] | None = Field(None, description="Default: every task.")
    dag_run_ids: list[str] | None = Field(None, description="Default: every run (or the date window).")
    map_indexes: list[int] | None = None
    start_date: AwareDatetime | None = Field(None, description="Runs with a logical date on or after this.")
    end_date: AwareDatetime | None = Field(None, description="Runs with a logical date on or before this.")
    include_upstream: bool = False
    include_downstream: bool = False
    include_past: bool = False
    include_future: bool = False


class ClearBody(_Selection):
    only_failed: bool = False


class MarkBody(_Selection):
    new_state: Literal["success", "failed", "skipped"]


def _filter(dag_id: str, run_id: str, query: TaskInstanceListQuery, **extra: Any) -> Any:
    from zonda.operations.listings import TaskInstanceFilter

    return TaskInstanceFilter(
        dag_id=one_or_every(dag_id),
        run_id=one_or_every(run_id),
        states=tuple(query.state),
        pools=tuple(query.pool),
        queues=tuple(query.queue),
        task_id_pattern=query.task_id_pattern,
        duration_gte=query.duration_gte,
        duration_lte=query.duration_lte,
        **{name: date_range(query, name) for name in ("start_date", "end_date", "updated_at")},
        **extra,
    )


def list_task_instances(dag_id: str, run_id: str, query: TaskInstanceListQuery) -> Any:
    """The instances of a run (`~` for the DAG or the run: of every one), mapped ones included."""
    from zonda.operations.listings import page_task_instances

    page = page_task_instances(engine(), page_request(query), _filter(dag_id, run_id, query), visible_to=viewer())
    return collection(page, "task_instances")


def list_mapped_task_instances(dag_id: str, run_id: str, task_id: str, query: TaskInstanceListQuery) -> Any:
    """The instances of a mapped task in a run, one per map index."""
    from zonda.operations.listings import page_task_instances

    where = _filter(concrete(dag_id, "DAG"), concrete(run_id, "run"), query, task_id=task_id, mapped_only=True)
    page = page_task_instances(engine(), page_request(query), where, visible_to=viewer())
    return collection(page, "task_instances")


def get_task_instance(dag_id: str, run_id: str, task_id: str) -> Any:
    """An unmapped task's instance."""
    return get_mapped_task_instance(dag_id, run_id, task_id, -1)


def get_mapped_task_instance(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """One instance of a mapped task."""
    from zonda.operations.task_instances_read import get_task_instance as get

    return get(engine(), dag_id, task_id, run_id, map_index)


def _selection(dag_id: str, body: _Selection, **extra: Any) -> Any:
    from zonda.operations.task_instances import Selection

    return Selection(
        concrete(dag_id, "DAG"),
        task_ids=body.task_ids,
        run_ids=body.dag_run_ids,
        map_indexes=body.map_indexes,
        start_date=body.start_date,
        end_date=body.end_date,
        upstream=body.include_upstream,
        downstream=body.include_downstream,
        past=body.include_past,
        future=body.include_future,
        **extra,
    )


def _audit(action: str, dag_id: str, outcome: Any, **extra: Any) -> None:
    from zonda.web.audit import audit

    if not outcome.dry_run:
        details = {
            "task_ids": sorted({r.task_id for r in outcome.instances}),
            "run_ids": sorted({r.run_id for r in outcome.instances}),
            "changed": outcome.changed,
            **extra,
        }
        audit(action, dag_id, details)


def clear_task_instances(dag_id: str, body: ClearBody) -> Any:
    """Clear the selected instances so the scheduler runs them again (their runs are queued again)."""
    from zonda.operations.task_instances import clear_task_instances as clear

    outcome = clear(engine(), _selection(dag_id, body, only_failed=body.only_failed), dry_run=body.dry_run)
    _audit("task_instances.clear", dag_id, outcome)
    return changes(outcome)


def set_task_instances_state(dag_id: str, body: MarkBody) -> Any:
    """Mark the selected instances success, failed or skipped."""
    from zonda.operations.task_instances import mark_task_instances

    outcome = mark_task_instances(engine(), _selection(dag_id, body), body.new_state, dry_run=body.dry_run)
    _audit("task_instances.mark", dag_id, outcome, state=body.new_state)
    return changes(outcome)


def routes() -> list[ApiRoute]:
    read = Permission.READ
    one = _LIST + "/{task_id}"
    return [
        ApiRoute(
            "GET",
            _LIST,
            list_task_instances,
            read,
            "List task instances",
            TAG,
            query=TaskInstanceListQuery,
            response=TaskInstanceCollection,
        ),
        ApiRoute("GET", one, get_task_instance, read, "Get a task instance", TAG, response=TaskInstance),
        ApiRoute(
            "GET",
            one + "/listMapped",
            list_mapped_task_instances,
            read,
            "List a mapped task's instances",
            TAG,
            query=TaskInstanceListQuery,
            response=TaskInstanceCollection,
        ),
        ApiRoute(
            "GET",
            one + "/{map_index}",
            get_mapped_task_instance,
            read,
            "Get a mapped task instance",
            TAG,
            response=TaskInstance,
            int_params=("map_index",),
        ),
        ApiRoute(
            "POST",
            "/dags/{dag_id}/clearTaskInstances",
            clear_task_instances,
            Permission.CLEAR_TASK_INSTANCES,
            "Clear task instances",
            TAG,
            body=ClearBody,
            response=TaskInstanceChanges,
        ),
        ApiRoute(
            "POST",
            "/dags/{dag_id}/updateTaskInstancesState",
            set_task_instances_state,
            Permission.MARK_STATES,
            "Set task instances' state",
            TAG,
            body=MarkBody,
            response=TaskInstanceChanges,
        ),
    ]
