"""One DAG's pages: the grid, the graph, the code and the details tabs, and the JSON the grid and graph scripts
draw from (``static/js/grid.js``, ``static/js/graph.js``).

The JSON is compact on purpose: the task list once, then per run one letter per task (a 1,000-task x 25-run page
is well under 100 KB). Every value from the DAG goes out as JSON data or autoescaped text; the scripts insert it
with ``textContent`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify, render_template, request

from zonda.exceptions import DagNotFound
from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires
from zonda.web.responses import problem

if TYPE_CHECKING:
    from collections.abc import Callable

    from zonda.operations.dags import DagRecord
    from zonda.operations.grid import GridGroup, GridTask

dag_pages = Blueprint("dag_pages", __name__)


def _not_found(exc: DagNotFound) -> Any:
    return problem(404, "Not found", str(exc))


def _before_cursor() -> int | None:
    """The grid's ``?before=`` cursor (a run's id); ValueError with a readable message when malformed."""
    raw = request.args.get("before", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"before must be a run's numeric id (the next_before of a grid page), not {raw[:40]!r}")
    return int(raw)


def _limit() -> int:
    raw = request.args.get("runs", "25").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ValueError(f"runs must be a number of runs from 1 to 100, not {raw[:40]!r}")
    return int(raw)


def _tab(template: str, dag_id: str, tab: str, extra: Callable[[DagRecord], dict[str, Any]] | None = None) -> Any:
    """A tab that needs the DAG's stored row (and what ``extra`` makes of it)."""
    from zonda.operations.dags import get_dag

    try:
        dag = get_dag(web_context().engine, dag_id, recent=0)
    except DagNotFound as exc:
        return _not_found(exc)
    return render_template(template, dag=dag, tab=tab, **(extra(dag) if extra else {}))


def _structure(groups: list[GridGroup], tasks: list[GridTask], *, operators: bool = False) -> dict[str, Any]:
    """The state letters, groups and tasks as the grid and graph scripts read them: a group or task refers to
    its (parent) group by index, -1 at the top level."""
    from zonda.operations.grid import STATE_CODES

    group_index = {g.group_id: i for i, g in enumerate(groups)}
    return {
        "codes": {letter: state for state, letter in STATE_CODES.items()},
        "groups": [[g.group_id, group_index.get(g.parent or "", -1)] for g in groups],
        "tasks": [
            [t.task_id, group_index.get(t.group or "", -1), int(t.is_mapped), *([t.operator] if operators else [])]
            for t in tasks
        ],
    }


@dag_pages.get("/dags/<dag_id>")
@requires(Permission.READ)
def grid(dag_id: str) -> Any:
    try:
        before = _before_cursor()
    except ValueError as exc:
        return problem(400, "Bad request", str(exc))
    return _tab("dag_grid.html", dag_id, "grid", lambda dag: {"before": before})


@dag_pages.get("/dags/<dag_id>/grid.json")
@requires(Permission.READ)
def grid_json(dag_id: str) -> Any:
    from zonda.operations.grid import STATE_CODES, grid_page

    try:
        page = grid_page(web_context().engine, dag_id, before=_before_cursor(), limit=_limit())
    except ValueError as exc:
        return problem(400, "Bad request", str(exc))
    except DagNotFound as exc:
        return _not_found(exc)
    group_index = {g.group_id: i for i, g in enumerate(page.groups)}
    return jsonify(
        {
            "dag_id": page.dag_id,
            "codes": {letter: state for state, letter in STATE_CODES.items()},
            "groups": [[g.group_id, group_index.get(g.parent or "", -1)] for g in page.groups],
            "tasks": [
                [task.task_id, group_index.get(task.group or "", -1), int(task.is_mapped)] for task in page.tasks
            ],
            "runs": [
                {
                    "run_id": run.run_id,
                    "logical_date": run.logical_date.isoformat() if run.logical_date else None,
                    "state": run.state,
                    "run_type": run.run_type,
                    "states": run.states,
                    "mapped": {str(index): counts for index, counts in run.mapped.items()},
                }
                for run in page.runs
            ],
            "next_before": page.next_before,
        }
    )


@dag_pages.get("/dags/<dag_id>/graph")
@requires(Permission.READ)
def graph(dag_id: str) -> Any:
    return _tab("dag_graph.html", dag_id, "graph")


@dag_pages.get("/dags/<dag_id>/graph.json")
@requires(Permission.READ)
def graph_json(dag_id: str) -> Any:
    from zonda.operations.dag_graph import dag_graph

    try:
        found = dag_graph(web_context().engine, dag_id)
    except DagNotFound as exc:
        return _not_found(exc)
    task_index = {task.task_id: i for i, task in enumerate(found.tasks)}
    run = found.latest_run
    return jsonify(
        {
            "dag_id": found.dag_id,
            **_structure(found.groups, found.tasks, operators=True),
            # [from, to] or, for an edge drawn through a Label, [from, to, label].
            "edges": [
                [task_index[up], task_index[down], *_label_of(found.edge_labels, up, down)]
                for up, down in found.edges
                if up in task_index
            ],
            "latest_run": None if run is None else {"run_id": run.run_id, "state": run.state, "states": run.states},
        }
    )


def _label_of(labels: dict[tuple[str, str], str], up: str, down: str) -> list[str]:
    label = labels.get((up, down))
    return [label] if label is not None else []


@dag_pages.get("/dags/<dag_id>/code")
@requires(Permission.READ)
def code(dag_id: str) -> Any:
    from zonda.operations.dag_source import read_dag_source

    dags_folder = web_context().settings.dags_folder
    return _tab("dag_code.html", dag_id, "code", lambda dag: {"source": read_dag_source(dags_folder, dag.fileloc)})


@dag_pages.get("/dags/<dag_id>/details")
@requires(Permission.READ)
def details(dag_id: str) -> Any:
    from zonda.operations.dag_details import dag_details
    from zonda.web.safe_markdown import render_markdown

    try:
        found = dag_details(web_context().engine, dag_id)
    except DagNotFound as exc:
        return _not_found(exc)
    return render_template(
        "dag_details.html", dag=found.dag, tab="details", details=found, doc_html=render_markdown(found.doc_md)
    )
