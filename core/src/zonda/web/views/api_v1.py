"""The ``api_v1`` blueprint: the REST API under ``/api/v1`` (Airflow's paths; JSON errors). For now only
``/api/v1/version``; the resources arrive with the API work."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from zonda.web.permissions import Permission, requires

api_v1 = Blueprint("api_v1", __name__, url_prefix="/api/v1")


@api_v1.get("/version")
@requires(Permission.AUTHENTICATED)
def version() -> Any:
    from zonda.version import __version__

    return jsonify(version=__version__)
