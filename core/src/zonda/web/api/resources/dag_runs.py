"""``/dags/{dag_id}/dagRuns``: list (``~`` for every DAG; filters by state, run type, ``run_id_pattern`` and
dates), get, trigger with a conf checked against the DAG's params, set a run's state, and clear a run."""

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

TAG = "DAGRun"
_RUN = "/dags/{dag_id}/dagRuns/{run_id}"


class DagRun(ApiModel):
    dag_run_id: str = Field(validation_alias="run_id")
    dag_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    external_trigger: bool
    #: Values under secret-looking keys are ``***``.
    conf: dict[str, Any]


class DagRunCollection(CollectionInfo):
    dag_runs: list[DagRun]


class DagRunListQuery(ListQuery, DateFilters):
    state: list[str] = Field(default_factory=list, description="Runs in any of these states.")
    run_type: list[str] = Field(default_factory=list)
    run_id_pattern: str | None = Field(None, max_length=250, description="SQL LIKE pattern (`%`, `_`).")
    logical_date_gte: AwareDatetime | None = None
    logical_date_lte: AwareDatetime | None = None


class TriggerBody(ApiModel):
    dag_run_id: str | None = Field(None, max_length=250, description="Default: made from the logical date.")
    logical_date: AwareDatetime | None = None
    conf: dict[str, Any] = Field(default_factory=dict, description="Checked against the DAG's params.")


class RunStateBody(ApiModel):
    state: Literal["queued", "success", "failed"]


class ClearRunBody(ApiModel):
    dry_run: bool = Field(True, description="Only say what would be cleared.")
    only_failed: bool = False


def list_dag_runs(dag_id: str, query: DagRunListQuery) -> Any:
    """The runs of a DAG (`~`: of every DAG), by `id` unless `order_by` says otherwise."""
    from zonda.operations.listings import RunFilter, page_runs

    where = RunFilter(
        dag_id=one_or_every(dag_id),
        states=tuple(query.state),
        run_types=tuple(query.run_type),
        run_id_pattern=query.run_id_pattern,
        **{name: date_range(query, name) for name in ("logical_date", "start_date", "end_date", "updated_at")},
    )
    return collection(page_runs(engine(), page_request(query), where, visible_to=viewer()), "dag_runs")


def get_dag_run(dag_id: str, run_id: str) -> Any:
    """One run."""
    from zonda.operations.dag_runs import get_run

    return get_run(engine(), dag_id, run_id)


def trigger_dag_run(dag_id: str, body: TriggerBody) -> Any:
    """Queue a manual run; a running scheduler starts it. 400 names the param a conf does not satisfy; 409 when
    the run id exists."""
    from zonda.operations.dag_runs import trigger
    from zonda.web.audit import audit

    run = trigger(
        engine(), concrete(dag_id, "DAG"), conf=body.conf, logical_date=body.logical_date, run_id=body.dag_run_id
    )
    audit("dag_run.trigger", dag_id, {"run_id": run.run_id, "conf_keys": sorted(run.conf)})
    return run


def set_dag_run_state(dag_id: str, run_id: str, body: RunStateBody) -> Any:
    """Mark a run queued, success or failed, with its task instances as Airflow does."""
    from zonda.operations.dag_runs import get_run
    from zonda.operations.dag_runs_state import set_dag_runs_state
    from zonda.web.audit import audit

    outcome = set_dag_runs_state(engine(), concrete(dag_id, "DAG"), [concrete(run_id, "run")], body.state)
    audit("dag_run.state", dag_id, {"run_id": run_id, "state": body.state, "changed": bool(outcome.runs)})
    return get_run(engine(), dag_id, run_id)


def clear_dag_run(dag_id: str, run_id: str, body: ClearRunBody) -> Any:
    """Clear every task instance of a run (or only the failed ones) so the scheduler runs them again."""
    from zonda.operations.task_instances import Selection, clear_task_instances
    from zonda.web.audit import audit

    selection = Selection(concrete(dag_id, "DAG"), run_ids=[concrete(run_id, "run")], only_failed=body.only_failed)
    outcome = clear_task_instances(engine(), selection, dry_run=body.dry_run)
    if not body.dry_run:
        audit("task_instances.clear", dag_id, {"run_ids": [run_id], "changed": outcome.changed})
    return changes(outcome)


def routes() -> list[ApiRoute]:
    read = Permission.READ
    return [
        ApiRoute(
            "GET",
            "/dags/{dag_id}/dagRuns",
            list_dag_runs,
            read,
            "List DAG runs",
            TAG,
            query=DagRunListQuery,
            response=DagRunCollection,
        ),
        ApiRoute(
            "POST",
            "/dags/{dag_id}/dagRuns",
            trigger_dag_run,
            Permission.TRIGGER_DAG_RUNS,
            "Trigger a DAG run",
            TAG,
            body=TriggerBody,
            response=DagRun,
        ),
        ApiRoute("GET", _RUN, get_dag_run, read, "Get a DAG run", TAG, response=DagRun),
        ApiRoute(
            "PATCH",
            _RUN,
            set_dag_run_state,
            Permission.MARK_STATES,
            "Set a DAG run's state",
            TAG,
            body=RunStateBody,
            response=DagRun,
        ),
        ApiRoute(
            "POST",
            _RUN + "/clear",
            clear_dag_run,
            Permission.CLEAR_TASK_INSTANCES,
            "Clear a DAG run",
            TAG,
            body=ClearRunBody,
            response=TaskInstanceChanges,
        ),
    ]
