"""``GET /dags/recent-runs.json``: what the DAGs page redraws when runs change (static/js/dags_live.js).

Only the DAGs named in the query (those whose runs changed), in one query, so a run finishing does not make every
open DAGs page reload the whole list.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires
from zonda.web.responses import problem
from zonda.web.sessions import current_user
from zonda.web.views.ui import RECENT_RUNS

#: Most DAGs one refresh asks for (the page asks for those on screen at most).
MAX_DAGS = 2_000

dags_live = Blueprint("dags_live", __name__)


@dags_live.get("/dags/recent-runs.json")
@requires(Permission.READ)
def recent_runs() -> Any:
    from zonda.operations.dags import recent_run_states

    dag_ids = sorted({v for v in request.args.getlist("dag_id") if v})
    if len(dag_ids) > MAX_DAGS:
        return problem(400, "Bad request", f"{len(dag_ids)} dag_id values; ask for at most {MAX_DAGS}")
    states = recent_run_states(web_context().engine, dag_ids, recent=RECENT_RUNS, visible_to=current_user())
    return jsonify({dag_id: list(states.get(dag_id, ())) for dag_id in dag_ids})


__all__ = ["dags_live"]
