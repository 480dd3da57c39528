"""``/pools``: list and get (any role), create, change and delete (Op). ``default_pool`` cannot be deleted."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.resources.common import engine
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "Pool"


class Pool(ApiModel):
    name: str = Field(validation_alias="pool")
    slots: int
    running_slots: int = Field(validation_alias="running")
    queued_slots: int = Field(validation_alias="queued")
    open_slots: int
    description: str | None


class PoolCollection(CollectionInfo):
    pools: list[Pool]


class NewPool(ApiModel):
    name: str = Field(min_length=1, max_length=256)
    slots: int = Field(ge=0, le=2**31 - 1)
    description: str | None = Field(None, max_length=5000)


class PoolPatch(ApiModel):
    slots: int | None = Field(None, ge=0, le=2**31 - 1)
    description: str | None = Field(None, max_length=5000)


def list_pools(query: ListQuery) -> Any:
    """Every pool by name, with the slots in use."""
    from zonda.operations.paging import page_of
    from zonda.operations.pools import list_pools as pools

    return collection(page_of(pools(engine()), page_request(query), lambda p: p.pool, "name"), "pools")


def get_pool(pool_name: str) -> Any:
    """One pool."""
    from zonda.operations.pools import get_pool as get

    return get(engine(), pool_name)


def _set(name: str, slots: int, description: str | None) -> Any:
    from zonda.operations.pools import set_pool
    from zonda.web.audit import audit

    pool, created = set_pool(engine(), name, slots, description)
    audit("pool.create" if created else "pool.edit", pool.pool, {"slots": pool.slots})
    return pool


def create_pool(body: NewPool) -> Any:
    """Create a pool (or set an existing one's slots)."""
    return _set(body.name, body.slots, body.description)


def patch_pool(pool_name: str, body: PoolPatch) -> Any:
    """Change a pool's slots or description."""
    from zonda.operations.pools import get_pool as get

    current = get(engine(), pool_name)
    return _set(pool_name, current.slots if body.slots is None else body.slots, body.description)


def delete_pool(pool_name: str) -> Any:
    """Delete a pool."""
    from zonda.operations.pools import delete_pool as delete
    from zonda.web.audit import audit

    delete(engine(), pool_name)
    audit("pool.delete", pool_name)


def routes() -> list[ApiRoute]:
    manage = Permission.MANAGE_POOLS
    one = "/pools/{pool_name}"
    return [
        ApiRoute(
            "GET", "/pools", list_pools, Permission.READ, "List pools", TAG, query=ListQuery, response=PoolCollection
        ),
        ApiRoute("POST", "/pools", create_pool, manage, "Create a pool", TAG, body=NewPool, response=Pool),
        ApiRoute("GET", one, get_pool, Permission.READ, "Get a pool", TAG, response=Pool),
        ApiRoute("PATCH", one, patch_pool, manage, "Change a pool", TAG, body=PoolPatch, response=Pool),
        ApiRoute("DELETE", one, delete_pool, manage, "Delete a pool", TAG, status=204),
    ]
