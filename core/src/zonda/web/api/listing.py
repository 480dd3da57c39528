"""The parameters every API list takes, the opaque cursor, and the shape of a collection.

``limit`` (1 to 1000, default 100), ``cursor`` (from the previous page's ``next_cursor``: the page starts after
its last row), ``offset`` (for clients written against Airflow; not with a cursor), ``order_by`` (a listed
column, ``-`` for descending) and ``count`` (``exact``, ``estimate`` or ``none``: ``total_entries`` is then
null).

The cursor is the last row's sort key and the order, signed with the installation's secret key: a client cannot
forge one that points somewhere else, and one from another order is refused rather than misread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zonda.operations.paging import DEFAULT_LIMIT, MAX_LIMIT, CountMode, Page, PageRequest
from zonda.web.api.routes import BadRequest

_SALT = "zonda.api.cursor"


class ListQuery(BaseModel):
    """Paging parameters; a resource's query model adds its filters."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Rows per page.")
    offset: int = Field(0, ge=0, le=2**31 - 1, description="Rows to skip (prefer `cursor`).")
    cursor: str | None = Field(None, max_length=2000, description="`next_cursor` of the previous page.")
    order_by: str | None = Field(
        None,
        max_length=100,
        description="A column name; prefix `-` for descending. Rows without a value (null) come where the "
        "database sorts null: first ascending on SQLite and MySQL, last ascending on PostgreSQL.",
    )
    count: CountMode = Field(
        CountMode.EXACT,
        description="How `total_entries` is counted: `exact` (the default, as Airflow's API; it reads every "
        "matching row, tens of milliseconds per million), `estimate` (PostgreSQL's planner; elsewhere exact up to "
        "10,000) or `none` (null; pollers rarely need it).",
    )


def _serializer() -> Any:
    """The app's cursor signer, made once per app (building one derives its key: a fifth of a millisecond)."""
    from flask import current_app
    from itsdangerous import URLSafeSerializer

    signer = current_app.extensions.get(_SALT)
    if signer is None:
        signer = current_app.extensions[_SALT] = URLSafeSerializer(current_app.secret_key, salt=_SALT)
    return signer


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        return datetime.fromisoformat(value["t"])
    return value


def encode_cursor(page: Page[Any]) -> str | None:
    if page.next_after is None:
        return None
    return _serializer().dumps({"o": page.order, "k": [_encode_value(v) for v in page.next_after]})


def page_request(query: ListQuery) -> PageRequest:
    """The operations' page request for ``query`` (a cursor that is not ours, or for another order: 400)."""
    from itsdangerous import BadSignature

    from zonda.exceptions import OperationError

    after = None
    if query.cursor:
        try:
            data = _serializer().loads(query.cursor)
            after = tuple(_decode_value(v) for v in data["k"])
            order = data["o"]
        except (BadSignature, KeyError, TypeError, ValueError):
            raise BadRequest(400, "the cursor is not one this server gave; start again without it") from None
        if query.order_by is not None and query.order_by.strip() != order:
            raise BadRequest(400, f"the cursor belongs to order_by={order}; pass that order, or no cursor")
        order_by = order
    else:
        order_by = query.order_by
    try:
        return PageRequest(limit=query.limit, offset=query.offset, after=after, order_by=order_by, count=query.count)
    except OperationError as exc:
        raise BadRequest(400, str(exc)) from None


class CollectionInfo(BaseModel):
    """What every collection answer carries besides its items."""

    total_entries: int | None = Field(description="Rows in the whole listing (null when `count=none`).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def collection(page: Page[Any], name: str) -> dict[str, Any]:
    """A collection answer: ``{name: [...], "total_entries", "next_cursor"}``."""
    return {name: page.items, "total_entries": page.total_entries, "next_cursor": encode_cursor(page)}


__all__ = ["CollectionInfo", "ListQuery", "collection", "encode_cursor", "page_request"]
