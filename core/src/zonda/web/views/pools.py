"""The ``pools`` blueprint: pools with their slot usage (running, queued, open), set and delete.

Needs ``MANAGE_POOLS`` (Op, Admin) to read as well as to change, as Airflow's Pools page does.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from zonda.exceptions import ZondaException
from zonda.web.audit import audit
from zonda.web.context import web_context
from zonda.web.outcomes import apply_change, done, refused
from zonda.web.permissions import Permission, requires

pool_views = Blueprint("pools", __name__)

LIST = "/pools"


@pool_views.get("/pools")
@requires(Permission.MANAGE_POOLS)
def pool_list() -> Any:
    from zonda.operations.pools import list_pools

    return render_template("admin/pools.html", pools=list_pools(web_context().engine))


@pool_views.post("/pools")
@requires(Permission.MANAGE_POOLS)
def set_pool() -> Any:
    from zonda.exceptions import OperationError
    from zonda.operations.pools import set_pool as store

    name = request.form.get("name", "")
    text = request.form.get("slots", "").strip()
    description = request.form.get("description")
    try:
        if not text.lstrip("-").isdigit():
            raise OperationError(f"slots must be a whole number (0 holds every task of the pool), not {text[:40]!r}")
        pool, created = store(web_context().engine, name, int(text), description.strip() if description else None)
    except ZondaException as exc:
        return refused(exc)
    audit("pool.create" if created else "pool.edit", pool.pool, {"slots": pool.slots})
    return done(f"Pool {pool.pool} {'created' if created else 'saved'} with {pool.slots} slots.", LIST)


@pool_views.post("/pools/<name>/delete")
@requires(Permission.MANAGE_POOLS)
def delete_pool(name: str) -> Any:
    from zonda.operations.pools import delete_pool as delete

    return apply_change(
        lambda: delete(web_context().engine, name),
        lambda _: f"Pool {name} deleted.",
        LIST,
        audit_action="pool.delete",
        target=name,
    )
