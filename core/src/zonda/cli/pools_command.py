"""``zonda pools set | list | delete``: named slot limits shared by every DAG (:mod:`zonda.operations.pools`)."""

from __future__ import annotations

import argparse

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands

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
    from zonda.cli._loading import open_metastore
    from zonda.operations.pools import set_pool

    metastore = open_metastore(settings())
    try:
        pool, created = set_pool(metastore.engine, args.name, args.slots, args.description)
    finally:
        metastore.dispose()
    print(f"Pool {pool.pool} {'created' if created else 'updated'}: {pool.slots} slot(s).")
    return 0


def _list(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations.pools import list_pools

    metastore = open_metastore(settings())
    try:
        pools = list_pools(metastore.engine)
    finally:
        metastore.dispose()
    rows = [
        {
            "pool": pool.pool,
            "slots": pool.slots,
            "running": pool.running,
            "queued": pool.queued,
            "open_slots": pool.open_slots,
            "description": pool.description,
        }
        for pool in pools
    ]
    print_rows(rows, POOL_FIELDS, args.output)
    return 0


def _delete(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations.pools import delete_pool

    metastore = open_metastore(settings())
    try:
        delete_pool(metastore.engine, args.name)
    finally:
        metastore.dispose()
    print(f"Pool {args.name} deleted.")
    return 0
