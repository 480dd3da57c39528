"""The graph of one DAG: its tasks and task groups, the dependencies between tasks, and the states of its
newest run, for the web server's graph view (laid out in the browser by a layout library).

Three statements: the serialized DAG, the newest run, that run's task-instance states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zonda.operations.grid import GridGroup, GridRun, GridTask, runs_of, serialized_data


@dataclass(frozen=True)
class DagGraph:
    dag_id: str
    tasks: list[GridTask]
    groups: list[GridGroup]
    #: (upstream task id, downstream task id), sorted.
    edges: list[tuple[str, str]]
    #: The label of each edge drawn through a ``Label`` (``a >> Label("x") >> b``).
    edge_labels: dict[tuple[str, str], str]
    #: The newest run, whose states colour the nodes; None before the first run.
    latest_run: GridRun | None


def dag_graph(engine: Any, dag_id: str) -> DagGraph:
    """The graph of ``dag_id``; :class:`~zonda.exceptions.DagNotFound` when it has not been serialized."""
    with engine.connect() as conn:
        data = serialized_data(conn, dag_id)
        page = runs_of(conn, dag_id, data, before=None, limit=1)
    edges = sorted((up, raw["task_id"]) for raw in data["tasks"] for up in raw.get("upstream", ()))
    labels = {(up, down): str(label) for up, down, label in data.get("edge_labels") or ()}
    return DagGraph(dag_id, page.tasks, page.groups, edges, labels, page.runs[0] if page.runs else None)


__all__ = ["DagGraph", "dag_graph"]
