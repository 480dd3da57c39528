"""The ``run_gantt`` blueprint: the Gantt view of one DAG run.

``GET /dags/<dag_id>/runs/<run_id>`` is the page (no data in it); ``static/js/gantt.js`` fetches
``GET /dags/<dag_id>/runs/<run_id>/gantt.json`` (:func:`zonda.operations.gantt.run_gantt` as JSON) and fetches it
again when the live stream reports a change in the run.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template

from zonda.exceptions import NotFound
from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires
from zonda.web.responses import problem

run_gantt = Blueprint("run_gantt", __name__)


@run_gantt.get("/dags/<dag_id>/runs/<run_id>")
@requires(Permission.READ)
def run_page(dag_id: str, run_id: str) -> Any:
    from zonda.operations.dag_runs import get_run

    try:
        run = get_run(web_context().engine, dag_id, run_id)
    except NotFound as exc:
        return problem(404, "Not found", str(exc))
    return render_template("run_gantt.html", dag_id=dag_id, run_id=run_id, run=run)


@run_gantt.get("/dags/<dag_id>/runs/<run_id>/gantt.json")
@requires(Permission.READ)
def gantt_json(dag_id: str, run_id: str) -> Any:
    from zonda.operations.gantt import run_gantt as gantt

    try:
        return jsonify(gantt(web_context().engine, dag_id, run_id).as_json())
    except NotFound as exc:
        return problem(404, "Not found", str(exc))
