"""``/connections`` (Op): list, get, create, change, delete. Secrets are write-only: no answer has a password
field, and extras that are secret (by name or by the provider's manifest) are ``***``; a PATCH that leaves the
password out keeps it, and an extra sent back as ``***`` keeps its stored value."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "Connection"


class Connection(ApiModel):
    connection_id: str = Field(validation_alias="conn_id")
    conn_type: str
    description: str | None
    host: str | None
    port: int | None
    schema_: str | None = Field(validation_alias="schema", serialization_alias="schema")
    login: str | None
    #: Whether a password is stored (its value is never returned).
    has_password: bool = Field(validation_alias="password")
    extra: Any

    @field_validator("has_password", mode="before")
    @classmethod
    def _password_set(cls, value: Any) -> bool:
        return bool(value)


class ConnectionCollection(CollectionInfo):
    connections: list[Connection]


class ConnectionFields(ApiModel):
    conn_type: str = Field(min_length=1, max_length=500)
    description: str | None = Field(None, max_length=5000)
    host: str | None = Field(None, max_length=500)
    port: int | None = Field(None, ge=0, le=65535)
    schema_: str | None = Field(None, alias="schema", max_length=500)
    login: str | None = Field(None, max_length=5000)
    password: str | None = Field(None, max_length=5000, description="Write-only.")
    extra: dict[str, Any] | None = None


class NewConnection(ConnectionFields):
    connection_id: str = Field(min_length=1, max_length=250)


class ConnectionPatch(ConnectionFields):
    conn_type: str | None = Field(None, min_length=1, max_length=500)  # type: ignore[assignment]


def _store() -> tuple[Any, Any]:
    from zonda.web.context import web_context

    context = web_context()
    return context.metastore(), context.settings


def _fields(body: ConnectionFields) -> dict[str, Any]:
    values = body.model_dump(include=body.model_fields_set - {"connection_id"})
    if "schema_" in values:
        values["schema"] = values.pop("schema_")
    if values.get("extra") is None:
        values.pop("extra", None)
    return values


def list_connections(query: ListQuery) -> Any:
    """The metastore's connections by id."""
    from zonda.operations.connection_forms import listing
    from zonda.operations.paging import page_of

    rows = listing(*_store())
    return collection(page_of(rows, page_request(query), lambda r: r.conn_id, "connection_id"), "connections")


def get_connection(connection_id: str) -> Any:
    """One stored connection."""
    from zonda.exceptions import ConnectionNotFound
    from zonda.operations.connection_forms import listing

    found = [r for r in listing(*_store()) if r.conn_id == connection_id]
    if not found:
        raise ConnectionNotFound(
            f"no connection {connection_id!r} in the metastore; GET /api/v1/connections lists them"
        )
    return found[0]


def create_connection(body: NewConnection) -> Any:
    """Store a new connection (409 when the id exists)."""
    from zonda.operations.connection_forms import save_connection_fields
    from zonda.web.audit import audit

    record = save_connection_fields(*_store(), body.connection_id, _fields(body), create=True)
    audit("connection.create", record.conn_id, {"conn_type": record.conn_type})
    return record


def patch_connection(connection_id: str, body: ConnectionPatch) -> Any:
    """Change the fields sent; the others (the password too) keep their values."""
    from zonda.operations.connection_forms import save_connection_fields
    from zonda.web.audit import audit

    values = _fields(body)
    record = save_connection_fields(*_store(), connection_id, values, create=False)
    audit("connection.edit", connection_id, {"fields": sorted(values), "secrets_changed": "password" in values})
    return record


def delete_connection(connection_id: str) -> Any:
    """Delete a stored connection."""
    from zonda.operations.connections import delete_connection as delete
    from zonda.web.audit import audit

    delete(*_store(), connection_id)
    audit("connection.delete", connection_id)


def routes() -> list[ApiRoute]:
    manage = Permission.MANAGE_CONNECTIONS
    one = "/connections/{connection_id}"
    return [
        ApiRoute(
            "GET",
            "/connections",
            list_connections,
            manage,
            "List connections",
            TAG,
            query=ListQuery,
            response=ConnectionCollection,
        ),
        ApiRoute(
            "POST",
            "/connections",
            create_connection,
            manage,
            "Create a connection",
            TAG,
            body=NewConnection,
            response=Connection,
        ),
        ApiRoute("GET", one, get_connection, manage, "Get a connection", TAG, response=Connection),
        ApiRoute(
            "PATCH",
            one,
            patch_connection,
            manage,
            "Change a connection",
            TAG,
            body=ConnectionPatch,
            response=Connection,
        ),
        ApiRoute("DELETE", one, delete_connection, manage, "Delete a connection", TAG, status=204),
    ]
