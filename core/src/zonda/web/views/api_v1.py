"""The ``api_v1`` blueprint: the REST API under ``/api/v1`` (Airflow's paths; JSON errors), built from the route
declarations of :mod:`zonda.web.api.resources`, plus the OpenAPI document made from the same declarations
(``/api/v1/openapi.json``) and its browsable reference (``/api/v1/docs``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template

from zonda.web.api.routes import ApiRoute, install
from zonda.web.permissions import Permission, requires


def api_routes() -> list[ApiRoute]:
    """Every API route, in the order the reference lists them."""
    from zonda.web.api.resources import (
        connections,
        dag_runs,
        dags,
        logs,
        monitor,
        pools,
        task_instances,
        users,
        variables,
        xcoms,
    )

    modules = (dags, dag_runs, task_instances, logs, xcoms, connections, variables, pools, users, monitor)
    return [route for module in modules for route in module.routes()]


def _build() -> Blueprint:
    blueprint = Blueprint("api_v1", __name__, url_prefix="/api/v1")
    install(blueprint, api_routes())
    blueprint.add_url_rule("/openapi.json", "openapi", openapi)
    blueprint.add_url_rule("/docs", "docs", docs)
    return blueprint


@requires(Permission.PUBLIC)
def openapi() -> Any:
    """The OpenAPI 3.1 document (public: it describes the API, it holds no data)."""
    from zonda.web.api.openapi import cached_document

    return jsonify(cached_document())


@requires(Permission.PUBLIC)
def docs() -> Any:
    """The reference, rendered on the server from the document (no script, nothing from a CDN)."""
    from zonda.web.api.openapi import cached_document, reference, schema_docs

    document = cached_document()
    return render_template("api_docs.html", tags=reference(document), schemas=schema_docs(document))


api_v1 = _build()
