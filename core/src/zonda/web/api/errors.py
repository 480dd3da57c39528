"""Every error under ``/api/`` is JSON ``{"title", "detail", "status"}``: Flask's own 404 and 405 (no route, wrong
method), a too-large body (413), and anything unexpected (500, with no internals in the answer). Pages keep their
HTML errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def _http_error(exc: HTTPException) -> Any:
    from zonda.web.responses import is_api_request, problem

    if not is_api_request():
        return exc
    headers = {name: value for name, value in exc.get_headers() if name == "Allow"}
    status = exc.code or 500
    return problem(status, exc.name, " ".join((exc.description or exc.name).split()), headers)


def _unexpected(exc: Exception) -> Any:
    from werkzeug.exceptions import HTTPException

    from zonda.web.responses import is_api_request, problem

    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if not is_api_request():
        raise exc  # pages keep Flask's own handling (and tests see the exception)
    log.exception("unexpected error answering an API request")
    return problem(500, "Internal error", "The server failed to answer; the error is in its log.")


def install_api_errors(app: Flask) -> None:
    from werkzeug.exceptions import HTTPException

    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


__all__ = ["install_api_errors"]
