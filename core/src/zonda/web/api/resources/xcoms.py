"""``.../taskInstances/{task_id}/xcomEntries``: a task instance's XComs (``~`` for the DAG, run or task: of every
one), and one entry with its value (secrets masked)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.resources.common import engine, one_or_every, viewer
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "XCom"
_LIST = "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"


class XComEntry(ApiModel):
    dag_id: str
    dag_run_id: str = Field(validation_alias="run_id")
    task_id: str
    map_index: int
    key: str
    timestamp: datetime


class XComWithValue(XComEntry):
    #: The stored JSON value (text when it is not JSON); secrets are ``***``.
    value: Any


class XComCollection(CollectionInfo):
    xcom_entries: list[XComEntry]


class XComListQuery(ListQuery):
    map_index: int | None = Field(None, ge=-1, le=2**31 - 1)
    xcom_key: str | None = Field(None, max_length=250)


class XComGetQuery(ApiModel):
    map_index: int = Field(-1, ge=-1, le=2**31 - 1)


def list_xcom_entries(dag_id: str, run_id: str, task_id: str, query: XComListQuery) -> Any:
    """XCom entries (without values), oldest first."""
    from zonda.operations.listings import XComFilter, page_xcoms

    where = XComFilter(
        one_or_every(dag_id), one_or_every(run_id), one_or_every(task_id), query.map_index, query.xcom_key
    )
    return collection(page_xcoms(engine(), page_request(query), where, visible_to=viewer()), "xcom_entries")


def get_xcom_entry(dag_id: str, run_id: str, task_id: str, xcom_key: str, query: XComGetQuery) -> Any:
    """One XCom entry with its value."""
    from dataclasses import asdict

    from zonda.operations.listings import get_xcom

    found = get_xcom(engine(), dag_id, run_id, task_id, xcom_key, query.map_index)
    return {**asdict(found.entry), "value": found.value}


def routes() -> list[ApiRoute]:
    read = Permission.READ
    return [
        ApiRoute(
            "GET",
            _LIST,
            list_xcom_entries,
            read,
            "List XCom entries",
            TAG,
            query=XComListQuery,
            response=XComCollection,
        ),
        ApiRoute(
            "GET",
            _LIST + "/{xcom_key}",
            get_xcom_entry,
            read,
            "Get an XCom entry",
            TAG,
            query=XComGetQuery,
            response=XComWithValue,
        ),
    ]
