"""API routes declared once, with everything about them: method, path, permission, the pydantic models of the
query, the body and the answer. The same declaration installs the Flask view (which validates the request with
those models and shapes the answer with the response model) and describes the route in the OpenAPI document, so
the document cannot drift from what the server accepts.

A view receives the path's values by name, plus ``query=`` and ``body=`` (validated models) when declared. It
returns what the response model is read from (a dataclass, a dict, a model), a ``(value, status)`` pair, or a
ready Flask ``Response`` (logs as text or as a stream). An operation's refusal becomes the JSON error with the
right status: 404 unknown, 409 clash, 400 anything else.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from zonda.web.permissions import Permission, requires

#: Statuses every API operation may answer besides its success (the OpenAPI document lists them).
ERROR_STATUSES = (400, 401, 403, 404, 409, 422)
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class ApiRoute:
    method: str
    #: The path below ``/api/v1`` in OpenAPI's template form: ``/dags/{dag_id}``.
    path: str
    view: Callable[..., Any]
    permission: Permission
    summary: str
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    #: None: the answer has no body (204).
    response: type[BaseModel] | None = None
    status: int = 200
    #: Path values that are integers (``try_number``); the others are strings.
    int_params: tuple[str, ...] = ()
    #: Other media types the success answer may come in (``text/plain``, ``text/event-stream``).
    alternatives: tuple[str, ...] = ()
    #: Headers the success answer carries: (name, description), integers (the deleted rows' counts).
    count_headers: tuple[tuple[str, str], ...] = ()

    @property
    def endpoint(self) -> str:
        return self.view.__name__

    @property
    def flask_rule(self) -> str:
        def convert(match: re.Match[str]) -> str:
            name = match.group(1)
            return f"<int:{name}>" if name in self.int_params else f"<{name}>"

        return _PARAM.sub(convert, self.path)

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)


class BadRequest(Exception):
    """A request the models refused: its status (400 malformed, 422 well-formed but invalid) and one line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def describe_validation_error(exc: ValidationError, where: str) -> str:
    """The first problem of a pydantic error as one line naming the field: ``query parameter limit: ...``."""
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "the value"
    message = first["msg"]
    more = len(exc.errors()) - 1
    return f"{where} {location}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


@functools.cache
def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    """The query fields that take a list (``state=a&state=b``); a model's fields never change, so once each."""
    found = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = typing.get_args(annotation)
        candidates = [annotation, *args]
        if any(typing.get_origin(c) in (list, tuple) or c in (list, tuple) for c in candidates):
            found.add(info.alias or name)
    return frozenset(found)


def parse_query(model: type[BaseModel]) -> BaseModel:
    from flask import request

    lists = _list_fields(model)
    data: dict[str, Any] = {}
    for name in request.args:
        values = request.args.getlist(name)
        data[name] = values if name in lists else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(400, describe_validation_error(exc, "query parameter")) from None


def parse_body(model: type[BaseModel]) -> BaseModel:
    from flask import request

    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        raise BadRequest(400, "send a JSON object as the body, with Content-Type: application/json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(422, describe_validation_error(exc, "body field")) from None


def _refusal(exc: Exception) -> Any:
    from zonda.exceptions import TaskLogNotFound
    from zonda.web.outcomes import error_status
    from zonda.web.responses import problem

    if isinstance(exc, BadRequest):
        status, detail = exc.status, exc.detail
    elif isinstance(exc, TaskLogNotFound):
        status, detail = 404, " ".join(str(exc).split())
    else:
        status, detail = error_status(exc), " ".join(str(exc).split())
    titles = {400: "Bad request", 404: "Not found", 409: "Conflict", 422: "Unprocessable content"}
    return problem(status, titles.get(status, "Bad request"), detail)


def present(route: ApiRoute, result: Any) -> Any:
    """The answer to send for what the view returned."""
    from flask import Response, request

    from zonda.web.api.etag import conditional

    if isinstance(result, Response):
        return result
    status = route.status
    if isinstance(result, tuple):
        result, status = result
    if route.response is None:
        return Response(status=204)
    model = (
        result if isinstance(result, route.response) else route.response.model_validate(result, from_attributes=True)
    )
    # pydantic writes the JSON itself (in Rust): a page of a thousand rows skips a dict of dicts and json.dumps.
    response = Response(model.model_dump_json(by_alias=True), status=status, mimetype="application/json")
    return conditional(response) if request.method == "GET" and status == 200 else response


def endpoint_for(route: ApiRoute) -> Callable[..., Any]:
    """The Flask view of ``route``: validate, call the view, present its result or its refusal."""
    from zonda.exceptions import ZondaException

    def endpoint(**path_values: Any) -> Any:
        kwargs = dict(path_values)
        try:
            if route.query is not None:
                kwargs["query"] = parse_query(route.query)
            if route.body is not None:
                kwargs["body"] = parse_body(route.body)
            result = route.view(**kwargs)
        except (BadRequest, ZondaException) as exc:
            return _refusal(exc)
        return present(route, result)

    endpoint.__name__ = route.endpoint
    endpoint.__doc__ = route.view.__doc__
    return requires(route.permission)(endpoint)


def install(blueprint: Any, routes: list[ApiRoute]) -> None:
    seen: set[str] = set()
    for route in routes:
        if route.endpoint in seen:
            raise ValueError(f"two API routes have the view name {route.endpoint!r}; rename one")
        seen.add(route.endpoint)
        blueprint.add_url_rule(route.flask_rule, route.endpoint, endpoint_for(route), methods=[route.method])


__all__ = ["ERROR_STATUSES", "ApiRoute", "BadRequest", "describe_validation_error", "install", "present"]
