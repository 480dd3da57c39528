"""``/dags``: list (filters: ``dag_id_pattern``, ``tags``, ``paused``, ``only_active``), get, pause or unpause
(``PATCH`` with ``{"is_paused": ...}``), and delete a DAG's history (``204`` as Airflow answers, the deleted rows
counted in the ``X-Deleted-Dag-Runs`` and ``X-Deleted-Task-Instances`` headers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.resources.common import viewer
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "DAG"


class DagTag(ApiModel):
    name: str


class Dag(ApiModel):
    dag_id: str
    dag_display_name: str | None = Field(None, description="The name shown (`dag_display_name`, or the id).")
    description: str | None
    fileloc: str | None
    is_paused: bool
    is_active: bool
    owners: list[str]
    tags: list[DagTag]
    timetable_description: str | None = Field(validation_alias="schedule")
    next_dagrun: datetime | None
    has_import_errors: bool
    scheduling_error: str | None

    @field_validator("owners", mode="before")
    @classmethod
    def _owners(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            return [owner.strip() for owner in value.split(",") if owner.strip()]
        return list(value or [])

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> list[Any]:
        return [{"name": tag} if isinstance(tag, str) else tag for tag in value or ()]


class DagCollection(CollectionInfo):
    dags: list[Dag]


class DagListQuery(ListQuery):
    dag_id_pattern: str | None = Field(None, max_length=250, description="SQL LIKE pattern (`%`, `_`).")
    tags: list[str] = Field(default_factory=list, description="DAGs with any of these tags.")
    paused: bool | None = None
    only_active: bool = True


class DagPatch(ApiModel):
    is_paused: bool


def _engine() -> Any:
    from zonda.web.context import web_context

    return web_context().engine


def list_dags(query: DagListQuery) -> Any:
    """Every DAG the metastore knows (active ones unless `only_active=false`), by `dag_id`."""
    from zonda.operations.listings import DagFilter, page_dags

    where = DagFilter(query.dag_id_pattern, tuple(query.tags), query.paused, query.only_active)
    page = page_dags(_engine(), page_request(query), where, visible_to=viewer())
    return collection(page, "dags")


def get_dag(dag_id: str) -> Any:
    """One DAG."""
    from zonda.operations.dags import get_dag as get

    return get(_engine(), dag_id, recent=0)


def patch_dag(dag_id: str, body: DagPatch) -> Any:
    """Pause or unpause a DAG (the scheduler creates no runs of a paused DAG)."""
    from zonda.operations.dags import set_paused
    from zonda.web.audit import audit

    record = set_paused(_engine(), dag_id, body.is_paused)
    audit("dag.pause" if body.is_paused else "dag.unpause", dag_id)
    return record


def delete_dag(dag_id: str) -> Any:
    """Delete a DAG's history (runs, task instances, XComs); its file brings the DAG back at the next parse.
    Refused (409) while any of its task instances is queued, running or deferred. 204, the counts in the
    `X-Deleted-Dag-Runs` and `X-Deleted-Task-Instances` headers."""
    from flask import Response

    from zonda.operations.dags import delete_dag as delete
    from zonda.web.audit import audit

    deletion = delete(_engine(), dag_id)
    audit("dag.delete", dag_id, {"dag_runs": deletion.dag_runs, "task_instances": deletion.task_instances})
    counts = {"X-Deleted-Dag-Runs": str(deletion.dag_runs), "X-Deleted-Task-Instances": str(deletion.task_instances)}
    return Response(status=204, headers=counts)


def routes() -> list[ApiRoute]:
    read, pause = Permission.READ, Permission.PAUSE_DAGS
    return [
        ApiRoute("GET", "/dags", list_dags, read, "List DAGs", TAG, query=DagListQuery, response=DagCollection),
        ApiRoute("GET", "/dags/{dag_id}", get_dag, read, "Get a DAG", TAG, response=Dag),
        ApiRoute(
            "PATCH", "/dags/{dag_id}", patch_dag, pause, "Pause or unpause a DAG", TAG, body=DagPatch, response=Dag
        ),
        ApiRoute(
            "DELETE",
            "/dags/{dag_id}",
            delete_dag,
            Permission.DELETE_DAGS,
            "Delete a DAG's history",
            TAG,
            status=204,
            count_headers=(
                ("X-Deleted-Dag-Runs", "How many runs were deleted."),
                ("X-Deleted-Task-Instances", "How many task instances were deleted."),
            ),
        ),
    ]
