"""``GET /events``: one tab's server-sent-events stream of state changes (see :mod:`zonda.web.live`).

``?dag_id=``, ``?run_id=`` and ``?kind=`` (each may repeat) narrow the stream to what the tab shows, on the
server, so a tab watching one run is not sent the rest of the installation's changes. A user with per-DAG grants
is sent only the changes of the DAGs they may see.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from zonda.web.permissions import Permission, requires
from zonda.web.responses import problem
from zonda.web.sessions import current_user, passive

#: Most values of one filter parameter (one tab watches a few DAGs or runs, never thousands).
MAX_FILTER_VALUES = 100
KINDS = frozenset({"ti", "run", "dag"})
#: Seconds a refused tab is asked to wait before trying again.
RETRY_AFTER_SECONDS = 30

live = Blueprint("live", __name__)


@live.get("/events")
@requires(Permission.READ)
@passive
def events() -> Any:
    from zonda.operations.dag_grants import visible_dag_ids
    from zonda.web.context import web_context
    from zonda.web.live.feed import FeedClosed, TooManyStreams, change_feed
    from zonda.web.live.sse import event_stream
    from zonda.web.live.subscriptions import ChangeFilter

    values = {name: frozenset(v for v in request.args.getlist(name) if v) for name in ("dag_id", "run_id", "kind")}
    for name, given in values.items():
        if len(given) > MAX_FILTER_VALUES:
            return problem(400, "Bad request", f"{name} is given {len(given)} times; watch at most {MAX_FILTER_VALUES}")
    unknown = sorted(values["kind"] - KINDS)
    if unknown:
        return problem(400, "Bad request", f"unknown kind {unknown[0]!r}; use one of {', '.join(sorted(KINDS))}")
    # The user's grants, once per tab (DAGs stored later show after the tab reconnects); no query without grants.
    visible = visible_dag_ids(web_context().engine, current_user())
    watching = ChangeFilter(dag_ids=values["dag_id"], run_ids=values["run_id"], kinds=values["kind"], visible=visible)
    feed = change_feed(current_app)
    try:
        subscription = feed.subscribe(watching)
    except (TooManyStreams, FeedClosed) as exc:
        return problem(
            503,
            "Live updates unavailable",
            f"{exc}; the page retries by itself (raise [webserver] event_streams and threads for more tabs)",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return Response(
        event_stream(feed, subscription),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


__all__ = ["live"]
