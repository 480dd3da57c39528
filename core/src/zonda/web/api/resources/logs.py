"""``.../taskInstances/{task_id}/logs/{try_number}``: a try's log, masked, three ways.

- JSON pages (the default): ``{total, start, lines, source, hits}``, ``count`` lines from ``start`` (default: the
  last lines); ``q`` adds the numbers of the lines containing it. Beside them, Airflow's keys: ``content`` (the
  page's lines as one text) and ``continuation_token`` (the line after the page; pass it back as ``token`` to get
  the lines written since), so clients written against Airflow read our logs.
- ``Accept: text/plain``: the whole log as text.
- ``Accept: text/event-stream``: the lines as the try writes them, as server-sent events (each event's data a
  JSON list of lines, its id the count so far; event ``end`` when the try ends), from line ``start``.

The same operations as the task page's log view (:mod:`zonda.operations.log_view`), and the same stream.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from zonda.operations.log_view import DEFAULT_WINDOW, MAX_WINDOW
from zonda.web.api.models import ApiModel
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "TaskInstance"
TEXT = "text/plain"
EVENTS = "text/event-stream"


class LogQuery(ApiModel):
    map_index: int = Field(-1, ge=-1, le=2**31 - 1)
    start: int | None = Field(None, ge=0, le=2**31 - 1, description="First line (0-based); default: the last lines.")
    count: int = Field(DEFAULT_WINDOW, ge=1, le=MAX_WINDOW, description="Lines per page.")
    q: str | None = Field(None, max_length=200, description="Also return the numbers of the lines containing this.")
    token: str | None = Field(
        None,
        pattern=r"^[0-9]{1,10}$",
        description="`continuation_token` of a previous answer: start there (when `start` is not given).",
    )
    full_content: bool = Field(
        False, description="From the first line, as many as one page holds (Airflow clients send it); text/plain: all."
    )


class LogPage(ApiModel):
    total: int
    start: int
    lines: list[str]
    source: str
    hits: list[int] | None
    #: Airflow's shape of the same page.
    content: str
    continuation_token: str


def _wanted() -> str:
    from flask import request

    best = request.accept_mimetypes.best_match(["application/json", TEXT, EVENTS], default="application/json")
    return best or "application/json"


def get_log(dag_id: str, run_id: str, task_id: str, try_number: int, query: LogQuery) -> Any:
    """A try's log as a JSON page, as text (`Accept: text/plain`), or followed live (`Accept: text/event-stream`)."""
    from flask import Response

    from zonda.operations.log_view import log_window, masked, search_log
    from zonda.operations.logs import locate_try
    from zonda.web.api.resources.common import engine
    from zonda.web.views.task_instance import log_event_stream, read_shown_log

    log_try = locate_try(engine(), dag_id, task_id, run_id, map_index=query.map_index, try_number=try_number)
    wanted = _wanted()
    if wanted == EVENTS:
        return log_event_stream(log_try, query.start or 0)
    task_log = read_shown_log(log_try)
    if wanted == TEXT:
        return Response("\n".join(masked(task_log.lines)) + "\n", mimetype="text/plain; charset=utf-8")
    if query.full_content:
        window = log_window(task_log.lines, task_log.source, start=0, count=max(1, len(task_log.lines)))
    else:
        start = query.start if query.start is not None or query.token is None else int(query.token)
        window = log_window(task_log.lines, task_log.source, start=start, count=query.count)
    hits = search_log(task_log.lines, query.q) if query.q else None
    return LogPage(
        total=window.total,
        start=window.start,
        lines=window.lines,
        source=window.source,
        hits=hits,
        content="\n".join(window.lines),
        continuation_token=str(window.start + len(window.lines)),
    )


def routes() -> list[ApiRoute]:
    return [
        ApiRoute(
            "GET",
            "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            get_log,
            Permission.READ,
            "Get a try's log",
            TAG,
            query=LogQuery,
            response=LogPage,
            int_params=("try_number",),
            alternatives=(TEXT, EVENTS),
        ),
    ]
