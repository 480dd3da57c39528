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
from typing import Any

#: Command groups in the order ``zonda --help`` lists them: (name, module, help).
COMMAND_GROUPS: list[tuple[str, str, str]] = [
    ("version", "zonda.cli.version_command", "Show the Zonda version"),
    ("db", "zonda.cli.db_command", "Create, migrate, reset or check the metastore"),
    ("standalone", "zonda.cli.standalone_command", "Run every service (web server too) in one process"),
    ("scheduler", "zonda.cli.scheduler_command", "Run the scheduler (and the DAG processor)"),
    ("webserver", "zonda.cli.webserver_command", "Run the web server (UI and API)"),
    ("triggerer", "zonda.cli.triggerer_command", "Run the triggerer for deferred tasks"),
    ("dags", "zonda.cli.dags_command", "List, show and test DAGs"),
    ("tasks", "zonda.cli.tasks_command", "List and test tasks"),
    ("pools", "zonda.cli.pools_command", "Manage pools (named slot limits)"),
    ("config", "zonda.cli.config_command", "Read the configuration"),
    ("connections", "zonda.cli.connections_command", "Manage connections"),
    ("variables", "zonda.cli.variables_command", "Manage variables"),
    ("providers", "zonda.cli.providers_command", "List installed providers and what they offer"),
    ("plugins", "zonda.cli.plugins_command", "List plugins, their hooks and load errors"),
    ("users", "zonda.cli.users_command", "Manage the web server's users"),
    ("rotate-fernet-key", "zonda.cli.rotate_fernet_key_command", "Re-encrypt every secret with the first key"),
]


def build_parser(extra_commands: Sequence[Any] = ()) -> argparse.ArgumentParser:
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
    for extra in extra_commands:
        sub = groups.add_parser(extra.name, help=extra.help, description=extra.help)
        sub.set_defaults(handler=extra.handler)
        if extra.register is not None:
            extra.register(sub)
    return parser


def _plugin_commands() -> list[Any]:
    """Commands from plugins (hook ``zonda_cli_commands``). Only called for a command that is not built in,
    so ``zonda --help`` and every built-in command start without importing any plugin."""
    from zonda.config import load_settings
    from zonda.plugins.manager import PluginManager

    manager = PluginManager.from_settings(load_settings())
    builtin = {name for name, _, _ in COMMAND_GROUPS}
    commands = []
    for result in manager.call("zonda_cli_commands"):
        for cmd in result:
            if cmd.name in builtin:
                print(f"warning: plugin command {cmd.name!r} clashes with a built-in command; ignored", file=sys.stderr)
                continue
            commands.append(cmd)
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    extra = _plugin_commands() if first and first not in {name for name, _, _ in COMMAND_GROUPS} else []
    parser = build_parser(extra)
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
        from zonda.masking import get_masker

        print(f"error: {get_masker().redact_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(result or 0)
