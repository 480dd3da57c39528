"""The ``zonda`` command line.

Start-up cost matters here (``zonda --help`` must feel instant), so the parser is built from small command
modules that import nothing heavy at module level; each handler imports what it needs when it runs.
Errors derived from :class:`~zonda.exceptions.ZondaException` print as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Command groups in the order ``zonda --help`` lists them: (name, module, help).
COMMAND_GROUPS: list[tuple[str, str, str]] = [
    ("version", "zonda.cli.version_command", "Show the Zonda version"),
    ("db", "zonda.cli.db_command", "Create, migrate, reset or check the metastore"),
    ("dags", "zonda.cli.dags_command", "List, show and test DAGs"),
    ("tasks", "zonda.cli.tasks_command", "List and test tasks"),
    ("config", "zonda.cli.config_command", "Read the configuration"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zonda",
        description="Zonda: author, run and watch data pipelines.",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="Show tracebacks for errors")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND")
    for name, module_name, help_text in COMMAND_GROUPS:
        module = importlib.import_module(module_name)
        sub = groups.add_parser(name, help=help_text, description=help_text)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # A group without a sub-command: show that group's help.
        target = getattr(args, "group_parser", parser)
        target.print_help()
        return 0 if args.group is None else 2
    from zonda.exceptions import ZondaException

    try:
        result = handler(args)
    except ZondaException as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(result or 0)
