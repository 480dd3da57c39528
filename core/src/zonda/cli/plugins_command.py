"""``zonda plugins list``: every plugin found, where from, its hooks, and why it failed if it did."""

from __future__ import annotations

import argparse

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    listing = command(subs, "list", _list, "List plugins (built-in, plugins folder, entry points) and load errors")
    add_output_argument(listing)


def _list(args: argparse.Namespace) -> int:
    from zonda.plugins.manager import PluginManager

    manager = PluginManager.from_settings(settings())
    rows = [record.as_row() for record in manager.records()]
    if args.output == "json":
        print_rows(rows, ["name", "source", "version", "hooks", "status", "error"], "json")
        return 0
    table = [
        {
            **row,
            "error": (row["error"] or "").strip().splitlines()[-1:] and (row["error"] or "").strip().splitlines()[-1],
        }
        for row in rows
    ]
    print_rows(table, ["name", "source", "version", "status", "hooks", "error"], "table")
    failed = [row for row in rows if row["error"]]
    for row in failed:
        print(f"\n{row['name']} ({row['source']}) failed:\n{row['error']}")
    return 0
