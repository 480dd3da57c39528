"""``/variables`` (Op): list, get, set, change, delete. Values of keys that look sensitive (``password``,
``secret``, ``token``...) are ``***`` in every answer; they can be written, never read back here."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "Variable"


class Variable(ApiModel):
    key: str
    value: str | None
    description: str | None


class VariableCollection(CollectionInfo):
    variables: list[Variable]


class NewVariable(ApiModel):
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(max_length=1_000_000)
    description: str | None = Field(None, max_length=5000)


class VariablePatch(ApiModel):
    value: str | None = Field(None, max_length=1_000_000, description="Left out: the value stays.")
    description: str | None = Field(None, max_length=5000)


def _store() -> tuple[Any, Any]:
    from zonda.web.context import web_context

    context = web_context()
    return context.settings, context.metastore()


def _rows() -> list[Any]:
    from zonda.operations.variables import list_variables

    settings, metastore = _store()
    return list_variables(settings, metastore=metastore)


def list_variables(query: ListQuery) -> Any:
    """The metastore's variables by key (sensitive values `***`)."""
    from zonda.operations.paging import page_of

    return collection(page_of(_rows(), page_request(query), lambda r: r.key, "key"), "variables")


def get_variable(key: str) -> Any:
    """One stored variable (a sensitive value is `***`)."""
    from zonda.exceptions import VariableNotFound

    found = [row for row in _rows() if row.key == key]
    if not found:
        raise VariableNotFound(f"no variable {key!r} in the metastore; GET /api/v1/variables lists them")
    return found[0]


def _save(key: str, value: str | None, description: str | None, action: str) -> Any:
    from zonda.operations.variables import edit_variable
    from zonda.web.audit import audit

    settings, metastore = _store()
    replaced = edit_variable(settings, key, value, description=description, metastore=metastore)
    audit(action if action != "variable.create" or not replaced else "variable.edit", key, {"replaced": replaced})
    return get_variable(key)


def create_variable(body: NewVariable) -> Any:
    """Set a variable (replacing a stored value)."""
    return _save(body.key, body.value, body.description, "variable.create")


def patch_variable(key: str, body: VariablePatch) -> Any:
    """Change a stored variable's value or description."""
    from zonda.exceptions import VariableNotFound

    stored = [row for row in _rows() if row.key == key]
    if not stored:
        raise VariableNotFound(f"no variable {key!r} in the metastore; POST /api/v1/variables creates it")
    description = body.description if "description" in body.model_fields_set else stored[0].description
    return _save(key, body.value, description, "variable.edit")


def delete_variable(key: str) -> Any:
    """Delete a stored variable."""
    from zonda.operations.variables import delete_variable as delete
    from zonda.web.audit import audit

    settings, metastore = _store()
    delete(settings, key, metastore=metastore)
    audit("variable.delete", key)


def routes() -> list[ApiRoute]:
    manage = Permission.MANAGE_VARIABLES
    one = "/variables/{key}"
    return [
        ApiRoute(
            "GET",
            "/variables",
            list_variables,
            manage,
            "List variables",
            TAG,
            query=ListQuery,
            response=VariableCollection,
        ),
        ApiRoute(
            "POST", "/variables", create_variable, manage, "Set a variable", TAG, body=NewVariable, response=Variable
        ),
        ApiRoute("GET", one, get_variable, manage, "Get a variable", TAG, response=Variable),
        ApiRoute("PATCH", one, patch_variable, manage, "Change a variable", TAG, body=VariablePatch, response=Variable),
        ApiRoute("DELETE", one, delete_variable, manage, "Delete a variable", TAG, status=204),
    ]
