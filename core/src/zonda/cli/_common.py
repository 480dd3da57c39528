"""Helpers shared by the command modules: output formats and settings loading."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", "-o", choices=("table", "json"), default="table", help="Output format (default: table)"
    )


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    parser.set_defaults(group_parser=parser)
    return parser.add_subparsers(dest="command", metavar="SUBCOMMAND")


def command(
    subs: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int | None],
    help_text: str,
) -> argparse.ArgumentParser:
    parser = subs.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def settings() -> Settings:
    from zonda.config import load_settings

    return load_settings()


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], output: str, file: Any = None) -> None:
    """Print rows as an aligned table or as a JSON list of objects (every listing command uses this)."""
    file = sys.stdout if file is None else file
    if output == "json":
        json.dump([{c: row.get(c) for c in columns} for row in rows], file, default=_json_default, indent=2)
        file.write("\n")
        return
    print_table([[_cell(row.get(c)) for c in columns] for row in rows], columns, file=file)


def print_table(body: Iterable[Sequence[str]], header: Sequence[str], file: Any = None) -> None:
    file = sys.stdout if file is None else file
    body = [list(map(str, r)) for r in body]
    widths = [len(h) for h in header]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    file.write(line + "\n")
    file.write("  ".join("-" * w for w in widths) + "\n")
    for row in body:
        file.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    if not body:
        file.write("(none)\n")
