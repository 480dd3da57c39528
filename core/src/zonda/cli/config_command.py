"""``zonda config get-value | list``."""

from __future__ import annotations

import argparse

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands

MASK = "***"


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    get = command(subs, "get-value", _get_value, "Print the value of one key")
    get.add_argument("section")
    get.add_argument("key")
    listing = command(subs, "list", _list, "List every key, its value and where it came from")
    listing.add_argument("--section", help="Only this section")
    add_output_argument(listing)


def _get_value(args: argparse.Namespace) -> int:
    value = settings().get(args.section, args.key)
    print("" if value is None else value)
    return 0


def _list(args: argparse.Namespace) -> int:
    current = settings()
    rows = []
    for option, section, key, value in current.items():
        if args.section and section != args.section:
            continue
        shown = MASK if option is not None and option.sensitive and value else value
        rows.append(
            {
                "section": section,
                "key": key,
                "value": shown,
                "source": current.source(section, key),
                "description": option.description if option else "",
            }
        )
    print_rows(rows, ["section", "key", "value", "source", "description"], args.output)
    return 0
