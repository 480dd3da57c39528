"""``zonda pools set | list | delete``: named slot limits shared by every DAG (table ``slot_pool``)."""

from __future__ import annotations

import argparse

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands

DEFAULT_POOL = "default_pool"
POOL_FIELDS = ["pool", "slots", "running", "queued", "open_slots", "description"]


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    set_ = command(subs, "set", _set, "Create a pool or change its slots and description")
    set_.add_argument("name")
    set_.add_argument("slots", type=int, help="How many slots (task instances of pool_slots=1) may run at once")
    set_.add_argument("--description", "-d", help="What the pool is for")
    listing = command(subs, "list", _list, "List pools with their slots in use")
    add_output_argument(listing)
    delete = command(subs, "delete", _delete, "Delete a pool (default_pool cannot be deleted)")
    delete.add_argument("name")


def _set(args: argparse.Namespace) -> int:
    from sqlalchemy import insert, select, update

    from zonda.cli._loading import open_metastore
    from zonda.exceptions import ZondaException
    from zonda.metastore import tables as t

    name = args.name.strip()
    if not name or len(name) > 256:
        raise ZondaException("a pool name must be 1 to 256 characters, e.g. zonda pools set api_calls 4")
    if args.slots < 0:
        raise ZondaException(f"slots must be 0 or more (0 holds every task of the pool), not {args.slots}")
    metastore = open_metastore(settings())
    try:
        with metastore.engine.begin() as conn:
            exists = conn.execute(select(t.pool.c.pool).where(t.pool.c.pool == name)).first()
            values: dict[str, object] = {"slots": args.slots}
            if args.description is not None:
                values["description"] = args.description
            if exists:
                conn.execute(update(t.pool).where(t.pool.c.pool == name).values(**values))
            else:
                conn.execute(insert(t.pool).values(pool=name, include_deferred=False, **values))
    finally:
        metastore.dispose()
    print(f"Pool {name} {'updated' if exists else 'created'}: {args.slots} slot(s).")
    return 0


def _list(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from zonda.cli._loading import open_metastore
    from zonda.metastore import tables as t

    ti = t.task_instance
    metastore = open_metastore(settings())
    try:
        with metastore.engine.connect() as conn:
            pools = conn.execute(select(t.pool).order_by(t.pool.c.pool)).all()
            used = conn.execute(
                select(ti.c.pool, ti.c.state, func.coalesce(func.sum(ti.c.pool_slots), 0))
                .where(ti.c.state.in_(("running", "queued")))
                .group_by(ti.c.pool, ti.c.state)
            ).all()
    finally:
        metastore.dispose()
    counts = {(pool, state): int(n) for pool, state, n in used}
    rows = []
    for pool in pools:
        running = counts.get((pool.pool, "running"), 0)
        queued = counts.get((pool.pool, "queued"), 0)
        rows.append(
            {
                "pool": pool.pool,
                "slots": pool.slots,
                "running": running,
                "queued": queued,
                "open_slots": pool.slots - running - queued,
                "description": pool.description,
            }
        )
    print_rows(rows, POOL_FIELDS, args.output)
    return 0


def _delete(args: argparse.Namespace) -> int:
    from sqlalchemy import delete

    from zonda.cli._loading import open_metastore
    from zonda.exceptions import ZondaException
    from zonda.metastore import tables as t

    if args.name == DEFAULT_POOL:
        raise ZondaException(
            f"{DEFAULT_POOL} cannot be deleted: tasks without a pool use it; change its size with "
            f"`zonda pools set {DEFAULT_POOL} SLOTS`"
        )
    metastore = open_metastore(settings())
    try:
        with metastore.engine.begin() as conn:
            result = conn.execute(delete(t.pool).where(t.pool.c.pool == args.name))
    finally:
        metastore.dispose()
    if not result.rowcount:
        raise ZondaException(f"there is no pool {args.name!r}; `zonda pools list` lists them")
    print(f"Pool {args.name} deleted.")
    return 0
