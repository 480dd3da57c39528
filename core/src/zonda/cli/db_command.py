"""``zonda db init | migrate | reset | check``: the metastore's schema life cycle."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from zonda.cli._common import add_output_argument, command, print_table, settings, subcommands

if TYPE_CHECKING:
    from zonda.metastore.db import Metastore


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    command(subs, "init", _init, "Create the metastore schema (does nothing when it is up to date)")
    migrate = command(subs, "migrate", _migrate, "Upgrade the metastore schema to this Zonda's revision")
    migrate.add_argument("--to-revision", default="head", help="Target revision (default: head)")
    reset = command(subs, "reset", _reset, "Drop every Zonda table and create the schema again (deletes data)")
    reset.add_argument("--yes", "-y", action="store_true", help="Do not ask for confirmation")
    check = command(subs, "check", _check, "Check that the metastore is reachable and its schema up to date")
    add_output_argument(check)


def _metastore() -> Metastore:
    from zonda.metastore.db import Metastore

    return Metastore.from_settings(settings())


def _init(args: argparse.Namespace) -> int:
    from zonda.home_folders import ensure_home_folders

    ensure_home_folders(settings())
    store = _metastore()
    try:
        before = store.current_revision()
        store.init()
        after = store.current_revision()
    finally:
        store.dispose()
    from zonda.fernet_bootstrap import ensure_fernet_key

    ensure_fernet_key(settings())  # so connections can be stored, and services start with the key in place
    if before == after:
        print(f"Metastore {store.redacted_url} is up to date (revision {after}).")
    else:
        print(f"Initialized the metastore {store.redacted_url} (revision {after}).")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    store = _metastore()
    try:
        before = store.current_revision()
        store.migrate(args.to_revision)
        after = store.current_revision()
    finally:
        store.dispose()
    if before == after:
        print(f"Metastore {store.redacted_url} is already at revision {after}.")
    else:
        print(f"Migrated the metastore {store.redacted_url} from revision {before or '(empty)'} to {after}.")
    return 0


def _reset(args: argparse.Namespace) -> int:
    store = _metastore()
    if not args.yes:
        prompt = (
            f"This deletes every DAG, run, task instance, XCom and connection in {store.redacted_url}. Proceed? [y/N] "
        )
        try:
            answer = input(prompt)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in {"y", "yes"}:
            print("Cancelled; nothing was changed.", file=sys.stderr)
            return 1
    try:
        store.reset()
        revision = store.current_revision()
    finally:
        store.dispose()
    print(f"Reset the metastore {store.redacted_url} (revision {revision}).")
    return 0


def _check(args: argparse.Namespace) -> int:
    store = _metastore()
    try:
        result = store.check()
    finally:
        store.dispose()
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        keys = ("url", "reachable", "current_revision", "head_revision", "ok", "error")
        print_table([[key, "" if result[key] is None else str(result[key])] for key in keys], ["key", "value"])
    return 0 if result["ok"] else 1
