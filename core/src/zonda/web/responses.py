"""Error answers in the form the caller reads: JSON ``{"title", "detail", "status"}`` under ``/api/``, from
``.json`` endpoints and for a page's script that asks for JSON (``Accept: application/json``), an HTML page
elsewhere. One place, so every refusal (401, 403, 400 for CSRF, 429) looks the same."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Response

API_PREFIX = "/api/"


def is_api_request() -> bool:
    from flask import request

    return request.path.startswith(API_PREFIX) or request.path.endswith(".json")


def wants_json() -> bool:
    """An API call, or a page's ``fetch`` of a JSON endpoint: it must get an error it can parse, not an HTML page."""
    from flask import request

    return is_api_request() or request.accept_mimetypes.best_match(("text/html", "application/json")) == (
        "application/json"
    )


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    from flask import jsonify, make_response, render_template

    if wants_json():
        response = make_response(jsonify(title=title, detail=detail, status=status), status)
    else:
        response = make_response(render_template("error.html", status=status, title=title, detail=detail), status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


__all__ = ["API_PREFIX", "is_api_request", "problem", "wants_json"]
