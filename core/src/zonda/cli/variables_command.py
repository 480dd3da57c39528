"""``zonda variables set | get | list | delete | import | export``: parse, call :mod:`zonda.operations.variables`,
print.

``list`` shows ``***`` for the value of a key that looks sensitive; ``get`` prints the value it was asked for (as
Airflow does); ``export`` writes every value decrypted, to an owner-only file, and warns about it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands
from zonda.cli._loading import opened_metastore
from zonda.exceptions import ZondaException

COLUMNS = ["key", "value", "description", "is_encrypted"]


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)

    set_ = command(subs, "set", _set, "Store a variable in the metastore (its value encrypted)")
    set_.add_argument("key", metavar="KEY")
    set_.add_argument("value", metavar="VALUE")
    set_.add_argument("--description", help="What the variable is for")
    set_.add_argument("--json", "-j", action="store_true", help="VALUE is JSON: check it and store it as JSON")

    get = command(subs, "get", _get, "Print a variable's value, from wherever the lookup finds it")
    get.add_argument("key", metavar="KEY")
    get.add_argument("--default", "-d", help="Print this when the variable is not defined (instead of failing)")
    get.add_argument("--json", "-j", action="store_true", help="Parse the value as JSON and print it indented")

    listing = command(subs, "list", _list, "List the metastore's variables (values of sensitive keys hidden)")
    add_output_argument(listing)

    delete = command(subs, "delete", _delete, "Delete a variable from the metastore")
    delete.add_argument("key", metavar="KEY")

    imp = command(subs, "import", _import, 'Store the variables of a JSON file {"key": value, ...}')
    imp.add_argument("file", metavar="FILE", help="Path of the JSON file, or - for standard input")
    imp.add_argument(
        "--action-on-existing-key",
        choices=("overwrite", "fail", "skip"),
        default="overwrite",
        help="What to do with keys already stored (default: overwrite)",
    )

    export = command(subs, "export", _export, "Write the metastore's variables to a JSON file, values decrypted")
    export.add_argument("file", metavar="FILE", help="Path of the file to write, or - for standard output")


def _set(args: argparse.Namespace) -> int:
    from zonda.operations.variables import set_variable

    value: Any = args.value
    if args.json:
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError as exc:
            raise ZondaException(
                f"--json: the value of {args.key} is not valid JSON ({exc.msg} at position {exc.pos}); "
                "drop --json to store it as text"
            ) from None
    current = settings()
    with opened_metastore(current) as metastore:
        replaced = set_variable(
            current, args.key, value, description=args.description, serialize_json=args.json, metastore=metastore
        )
    print(f"{'updated' if replaced else 'added'} variable {args.key}")
    return 0


def _get(args: argparse.Namespace) -> int:
    from zonda.operations.variables import get_variable
    from zonda.variable import NOTSET

    current = settings()
    missing = object()
    with opened_metastore(current) as metastore:
        value = get_variable(
            current,
            args.key,
            default=missing if args.default is not None else NOTSET,
            deserialize_json=args.json,
            metastore=metastore,
        )
    if value is missing:
        print(args.default)
    else:
        print(json.dumps(value, indent=2) if args.json else value)
    return 0


def _list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from zonda.operations.variables import list_variables

    current = settings()
    with opened_metastore(current) as metastore:
        rows = [asdict(row) for row in list_variables(current, metastore=metastore)]
    if args.output == "table":
        rows = [{**row, "value": _one_line(row["value"])} for row in rows]
    print_rows(rows, COLUMNS, args.output)
    return 0


def _one_line(value: str | None) -> str | None:
    """A value on one table line: JSON compacted, other line breaks shown as ``\\n``."""
    if value is None or "\n" not in value:
        return value
    try:
        return json.dumps(json.loads(value), separators=(",", ":"))
    except ValueError:
        return value.replace("\r", "\\r").replace("\n", "\\n")


def _delete(args: argparse.Namespace) -> int:
    from zonda.operations.variables import delete_variable

    current = settings()
    with opened_metastore(current) as metastore:
        delete_variable(current, args.key, metastore=metastore)
    print(f"deleted variable {args.key}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from zonda.operations.variables import import_variables

    current = settings()
    with opened_metastore(current) as metastore:
        result = import_variables(
            current, args.file, action_on_existing_key=args.action_on_existing_key, metastore=metastore
        )
    for key in result.skipped:
        print(f"skipped {key}: it already exists (use --action-on-existing-key overwrite to replace it)")
    print(
        f"imported {result.added + result.replaced} variable(s) ({result.added} added, {result.replaced} replaced, "
        f"{len(result.skipped)} skipped)"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from zonda.operations.variables import export_variables

    current = settings()
    with opened_metastore(current) as metastore:
        count = export_variables(current, args.file, metastore=metastore)
    where = "standard output" if args.file == "-" else args.file
    if args.file != "-":
        print(f"exported {count} variable(s) to {where}")
    print(
        f"warning: {where} holds the values of {count} variable(s) in plain text; keep it private and delete it "
        "after importing",
        file=sys.stderr,
    )
    return 0
