"""The OpenAPI 3.1 document, built from the route declarations and their pydantic models: the same models validate
the requests and shape the answers, so the document says what the server does. And the reference page's view of
it (operations grouped by tag, their parameters, bodies and answers), rendered on the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from zonda.web.api.models import Problem
from zonda.web.api.routes import ERROR_STATUSES, ApiRoute
from zonda.web.permissions import Permission

API_PREFIX = "/api/v1"
_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    200: "OK",
    204: "No content",
    304: "Not modified (the `If-None-Match` ETag is current)",
    400: "Bad request",
    401: "Not logged in",
    403: "The role does not allow it",
    404: "Not found",
    409: "Conflict",
    422: "The body is well-formed but invalid",
}


def _schemas(routes: list[ApiRoute]) -> tuple[dict[Any, Any], dict[str, Any]]:
    models: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    for route in routes:
        if route.query is not None:
            models.append((route.query, "validation"))
        if route.body is not None:
            models.append((route.body, "validation"))
        if route.response is not None:
            models.append((route.response, "serialization"))
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema(unique, ref_template=_REF)
    return refs, top.get("$defs", {})


def _schema_of(refs: dict[Any, Any], model: type[BaseModel], mode: str) -> dict[str, Any]:
    return refs[(model, mode)]


def _parameters(route: ApiRoute, refs: dict[Any, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0} if name in route.int_params else {"type": "string"},
        }
        for name in route.path_params
    ]
    if route.query is None:
        return params
    ref = _schema_of(refs, route.query, "validation")["$ref"].rsplit("/", 1)[-1]
    schema = components[ref]
    required = set(schema.get("required", ()))
    for name, declared in schema.get("properties", {}).items():
        prop = dict(declared)
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param.update(style="form", explode=True)
        params.append(param)
    return params


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(route: ApiRoute, refs: dict[Any, Any]) -> dict[str, Any]:
    problem = _json({"$ref": _REF.format(model="Problem")})
    responses: dict[str, Any] = {}
    if route.response is None:
        responses["204"] = {"description": _STATUS_TEXT[204]}
        if route.count_headers:
            responses["204"]["headers"] = {
                name: {"description": text, "schema": {"type": "integer"}} for name, text in route.count_headers
            }
    else:
        content = _json(_schema_of(refs, route.response, "serialization"))
        for media in route.alternatives:
            content[media] = {"schema": {"type": "string"}}
        responses[str(route.status)] = {"description": _STATUS_TEXT.get(route.status, "OK"), "content": content}
        if route.method == "GET":
            responses["304"] = {"description": _STATUS_TEXT[304]}
    statuses = [s for s in ERROR_STATUSES if s != 401 or route.permission is not Permission.PUBLIC]
    for status in statuses:
        if status == 422 and route.body is None:
            continue
        responses[str(status)] = {"description": _STATUS_TEXT[status], "content": problem}
    return responses


def _operation(route: ApiRoute, refs: dict[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    doc = " ".join((route.view.__doc__ or "").split())
    operation: dict[str, Any] = {
        "operationId": route.endpoint,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route, refs, components),
        "responses": _responses(route, refs),
        "x-zonda-permission": route.permission.value,
    }
    if doc:
        operation["description"] = doc
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": _json(_schema_of(refs, route.body, "validation")),
        }
    return operation


def openapi_document(routes: list[ApiRoute]) -> dict[str, Any]:
    """The document for ``routes`` (paths below ``/api/v1``)."""
    from zonda.version import __version__

    refs, components = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(API_PREFIX + route.path, {})[route.method.lower()] = _operation(route, refs, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Zonda REST API",
            "version": __version__,
            "description": (
                "Errors are JSON {title, detail, status}. Lists take limit, cursor (or offset), order_by and "
                "count. GETs answer with an ETag; send it back as If-None-Match to get 304 while nothing changed."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "zonda_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"session": []}, {"bearer": []}],
    }


def cached_document() -> dict[str, Any]:
    """The app's document, built on first use (the routes do not change while it runs)."""
    from flask import current_app

    from zonda.web.views.api_v1 import api_routes

    document = current_app.extensions.get("zonda_openapi")
    if document is None:
        document = current_app.extensions["zonda_openapi"] = openapi_document(api_routes())
    return document


# --- the reference page -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterDoc:
    name: str
    where: str
    required: bool
    type: str
    description: str


@dataclass(frozen=True)
class OperationDoc:
    method: str
    path: str
    summary: str
    description: str
    permission: str
    parameters: list[ParameterDoc]
    body: str | None
    responses: list[tuple[str, str, str]]


@dataclass
class TagDoc:
    name: str
    operations: list[OperationDoc] = field(default_factory=list)


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    return str(schema.get("type", "any"))


def reference(document: dict[str, Any]) -> list[TagDoc]:
    """The document as the reference page lists it: by tag, then by path."""
    tags: dict[str, TagDoc] = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            responses = []
            for status, answer in op["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                others = [m for m in answer.get("content", {}) if m != "application/json"]
                shape = (_type_name(schema) if schema else "") + (f" (or {', '.join(others)})" if others else "")
                responses.append((status, answer["description"], shape))
            tag = op["tags"][0]
            tags.setdefault(tag, TagDoc(tag)).operations.append(
                OperationDoc(
                    method=method.upper(),
                    path=path,
                    summary=op["summary"],
                    description=op.get("description", ""),
                    permission=op["x-zonda-permission"],
                    parameters=[
                        ParameterDoc(
                            p["name"], p["in"], p["required"], _type_name(p["schema"]), p.get("description", "")
                        )
                        for p in op["parameters"]
                    ],
                    body=_type_name(body) if body else None,
                    responses=responses,
                )
            )
    return list(tags.values())


@dataclass(frozen=True)
class SchemaDoc:
    name: str
    description: str
    #: (field, type, required, description)
    fields: list[tuple[str, str, bool, str]]


def schema_docs(document: dict[str, Any]) -> list[SchemaDoc]:
    """The models of the answers and bodies, with their fields."""
    docs = []
    for name, schema in sorted(document["components"]["schemas"].items()):
        required = set(schema.get("required", ()))
        fields = [
            (field_name, _type_name(prop), field_name in required, prop.get("description", ""))
            for field_name, prop in schema.get("properties", {}).items()
        ]
        docs.append(SchemaDoc(name, " ".join(schema.get("description", "").split()), fields))
    return docs


__all__ = ["cached_document", "openapi_document", "reference", "schema_docs"]
