"""The ``task_instance`` blueprint: one task instance's page and its logs.

Routes (``?map_index=N`` on each, -1 by default):

- ``GET /dags/<dag_id>/runs/<run_id>/tasks/<task_id>``: the page: state, "why isn't it running?"
  (:mod:`zonda.operations.why`), XComs, rendered template fields, a log tab per try, and the clear / mark forms
  (see :mod:`zonda.web.views.task_actions`).
- ``GET .../tasks/<task_id>/logs/<try>?start=&count=&q=``: JSON ``{total, start, lines, source, hits, missing}``:
  a window of the try's log (default: the last lines) read through the configured task-log handler, masked;
  ``q`` adds the numbers of the lines containing it; ``missing`` says why there is no log yet (else null).
  No answer names a path outside the logs folder.
- ``GET .../logs/<try>/download``: the whole log as plain text (an attachment).
- ``GET .../logs/<try>/stream?line=N``: server-sent events following the try's local log file from line ``N``
  (or the ``Last-Event-ID`` a reconnecting browser sends): each event's data is a JSON list of new lines and
  its id the count of lines so far. The stream ends (event ``end``) when the try ends, or after
  ``STREAM_MAX_SECONDS``; a reconnect resumes.

``static/js/task_log.js`` draws the log virtualized (only the visible lines are in the DOM) and parses ANSI
colours into spans; every line is set with ``textContent``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from zonda.exceptions import NotFound, OperationError, TaskLogNotFound
from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires
from zonda.web.responses import problem

task_instance = Blueprint("task_instance", __name__)

#: A live log stream ends after this long (the browser reconnects where it stopped): a thread is never held forever.
STREAM_MAX_SECONDS = 10 * 60
#: A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
_BASE = "/dags/<dag_id>/runs/<run_id>/tasks/<task_id>"


def _int_arg(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise OperationError(f"{name} must be a whole number, not {raw[:40]!r}") from None


def _refusal(exc: Exception) -> Any:
    if isinstance(exc, NotFound | TaskLogNotFound):
        return problem(404, "Not found", str(exc))
    return problem(400, "Bad request", str(exc))


def log_handler() -> Any:
    """The installation's task-log handler, built once per app (a plugin or provider handler is imported then)."""
    handler = current_app.extensions.get("zonda_task_log_handler")
    if handler is None:
        from zonda.runner.log_handlers import load_task_log_handler

        handler = load_task_log_handler(web_context().settings)
        current_app.extensions["zonda_task_log_handler"] = handler
    return handler


def _locate(dag_id: str, run_id: str, task_id: str, try_number: int) -> Any:
    from zonda.operations.logs import locate_try

    map_index = _int_arg("map_index", -1)
    return locate_try(web_context().engine, dag_id, task_id, run_id, map_index=map_index, try_number=try_number)


@task_instance.get(_BASE)
@requires(Permission.READ)
def page(dag_id: str, run_id: str, task_id: str) -> Any:
    from zonda.operations.task_instance_details import task_instance_details
    from zonda.operations.task_instances_read import get_task_instance
    from zonda.operations.why import why

    context = web_context()
    try:
        map_index = _int_arg("map_index", -1)
        assert map_index is not None
        record = get_task_instance(context.engine, dag_id, task_id, run_id, map_index)
        report = why(context.engine, context.settings, dag_id, task_id, run_id, map_index)
        details = task_instance_details(context.engine, dag_id, run_id, task_id, map_index)
    except OperationError as exc:
        return _refusal(exc)
    return render_template(
        "task_instance.html",
        ti=record,
        why=report,
        details=details,
        as_json=_pretty,
        tries=list(range(1, record.try_number + 1)),
    )


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=str, ensure_ascii=False)


@task_instance.get(f"{_BASE}/logs/<int:try_number>")
@requires(Permission.READ)
def log_json(dag_id: str, run_id: str, task_id: str, try_number: int) -> Any:
    """A window of the try's log; a try whose log does not exist yet (queued, or started on a worker that has not
    written) answers 200 with no lines and ``missing`` saying so: the page shows "no log yet", not an error."""
    from zonda.operations.log_view import DEFAULT_WINDOW, log_window, search_log

    try:
        log_try = _locate(dag_id, run_id, task_id, try_number)
        start = _int_arg("start", None)
        count = _int_arg("count", DEFAULT_WINDOW)
        assert count is not None
        task_log = read_shown_log(log_try)
    except TaskLogNotFound as exc:
        return jsonify(total=0, start=0, lines=[], source="", hits=None, missing=str(exc))
    except OperationError as exc:
        return _refusal(exc)
    window = log_window(task_log.lines, task_log.source, start=start, count=count)
    query = request.args.get("q", "")
    return jsonify(
        total=window.total,
        start=window.start,
        lines=window.lines,
        source=window.source,
        hits=search_log(task_log.lines, query) if query else None,
        missing=None,
    )


def read_shown_log(log_try: Any) -> Any:
    """The try's log as the browser may see it: read through the configured handler, with the server's log
    folder cut from where it came from (and from the "not found" message), so no absolute path of the server
    reaches a page or a response; a path inside the logs folder is kept (it names the try)."""
    from zonda.operations.logs import read_log

    handler = log_handler()
    try:
        task_log = read_log(handler, log_try)
    except TaskLogNotFound as exc:
        raise TaskLogNotFound(_without_log_folder(str(exc), handler.log_folder)) from None
    return task_log._replace(source=_without_log_folder(task_log.source, handler.log_folder))


def _without_log_folder(text: str, log_folder: Path) -> str:
    for folder in {str(log_folder.resolve()), str(log_folder)}:
        text = text.replace(folder.rstrip(os.sep) + os.sep, "")
    return text


@task_instance.get(f"{_BASE}/logs/<int:try_number>/download")
@requires(Permission.READ)
def log_download(dag_id: str, run_id: str, task_id: str, try_number: int) -> Any:
    from zonda.operations.log_view import masked

    try:
        log_try = _locate(dag_id, run_id, task_id, try_number)
        task_log = read_shown_log(log_try)
    except (OperationError, TaskLogNotFound) as exc:
        return _refusal(exc)
    name = f"{dag_id}.{task_id}.{run_id}.{log_try.map_index}.{try_number}.log"
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    text = "\n".join(masked(task_log.lines)) + "\n"
    response = Response(text, mimetype="text/plain; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    return response


@task_instance.get(f"{_BASE}/logs/<int:try_number>/stream")
@requires(Permission.READ)
def log_stream(dag_id: str, run_id: str, task_id: str, try_number: int) -> Any:
    try:
        log_try = _locate(dag_id, run_id, task_id, try_number)
        resume = request.headers.get("Last-Event-ID") or None
        from_line = int(resume) if resume and resume.isdigit() else _int_arg("line", 0) or 0
    except OperationError as exc:
        return _refusal(exc)
    return log_event_stream(log_try, from_line)


def log_event_stream(log_try: Any, from_line: int) -> Response:
    """Server-sent events following ``log_try``'s local log file from line ``from_line`` (the task page and the
    API's ``.../logs/{try_number}`` with ``Accept: text/event-stream`` both answer with it)."""
    from zonda.operations.logs import try_is_live

    engine = web_context().engine
    path = log_handler().local_path(log_try.key)

    def events() -> Iterator[str]:
        from zonda.operations.log_view import follow_file

        yield "retry: 2000\n\n"
        quiet = 0.0
        for seen, lines in follow_file(
            path, from_line, is_over=lambda: not try_is_live(engine, log_try), max_seconds=STREAM_MAX_SECONDS
        ):
            if lines:
                quiet = 0.0
                yield f"id: {seen}\ndata: {json.dumps(lines, ensure_ascii=False)}\n\n"
            else:
                quiet += 0.2
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        if not try_is_live(engine, log_try):
            yield "event: end\ndata: {}\n\n"  # else the time limit ended it: the browser reconnects and resumes

    response = Response(events(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
