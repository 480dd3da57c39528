"""``zonda providers list | hooks | connection-types | operators``: what installed providers offer.

Every sub-command reads manifests only (see :mod:`zonda.providers`): no hook, operator or client library is
imported, so these commands stay fast and work even when a provider's dependencies are broken.

Output shapes (``--output json``):

* ``providers list`` prints one object ``{"providers": [...], "errors": [...]}``. Each provider has ``name``,
  ``package``, ``version``, ``description``, ``zonda_versions``, ``connection_types`` (conn_type names),
  ``hooks``, ``operators``, ``sensors``, ``triggers``, ``transfers``, ``log_handlers``, ``executors`` (dotted
  paths) and ``entry_point``. Each error (a provider that was skipped) has ``name``, ``distribution``,
  ``entry_point``, ``kind`` (``load`` | ``invalid`` | ``incompatible``) and ``problems`` (a list of strings).
  The table lists the providers, then the skipped ones with every problem.
* ``providers hooks``: a list of ``{hook, provider, conn_types}``.
* ``providers connection-types``: a list of ``{conn_type, display_name, hook, provider, fields}`` where
  ``fields`` maps each field name to ``{label, type, secret, default, help, placeholder}``.
* ``providers operators``: a list of ``{class, kind, provider}`` for operators, sensors and transfers
  (``--kind`` picks other kinds: triggers, log_handlers, executors).

The list commands other than ``providers list`` keep the plain JSON list every listing command prints; when
providers were skipped they say so on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from zonda.cli._common import add_output_argument, command, print_rows, subcommands

if TYPE_CHECKING:
    from zonda.providers.registry import ProvidersRegistry

_KINDS = ("operators", "sensors", "transfers", "triggers", "log_handlers", "executors")


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    add_output_argument(command(subs, "list", _list, "List installed providers and the ones that failed to load"))
    add_output_argument(command(subs, "hooks", _hooks, "List hook classes and their connection types"))
    add_output_argument(command(subs, "connection-types", _connection_types, "List connection types and their fields"))
    operators = command(subs, "operators", _operators, "List operators, sensors and transfers from providers")
    add_output_argument(operators)
    operators.add_argument(
        "--kind",
        action="append",
        choices=_KINDS,
        help="Only these kinds (repeatable; default: operators, sensors, transfers)",
    )


def _registry() -> ProvidersRegistry:
    from zonda.providers import get_providers_registry

    return get_providers_registry()


def _warn_errors(registry: ProvidersRegistry) -> None:
    errors = registry.errors
    if errors:
        names = ", ".join(error.name or error.entry_point for error in errors)
        print(f"warning: {len(errors)} provider(s) skipped ({names}); see `zonda providers list`", file=sys.stderr)


def _list(args: argparse.Namespace) -> int:
    registry = _registry()
    providers = list(registry.providers.values())
    errors = registry.errors
    if args.output == "json":
        json.dump(
            {"providers": [p.as_dict() for p in providers], "errors": [e.as_dict() for e in errors]},
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    rows = [
        {
            "name": p.name,
            "package": p.package,
            "version": p.version,
            "zonda_versions": p.zonda_versions,
            "connection_types": [ct.conn_type for ct in p.connection_types],
            "description": _short(p.description),
        }
        for p in providers
    ]
    print_rows(rows, ["name", "package", "version", "zonda_versions", "connection_types", "description"], "table")
    if errors:
        print(f"\n{len(errors)} provider(s) skipped:")
        for error in errors:
            where = error.distribution or "unknown distribution"
            print(f"  {error.name or '?'} ({where}, entry point {error.entry_point!r}): {error.kind}")
            for problem in error.problems:
                print(f"    - {problem}")
    return 0


def _short(text: str, width: int = 60) -> str:
    """The table shows a description's first sentence, cut to ``width``; JSON has it whole."""
    first = text.split(". ", 1)[0].strip()
    return first if len(first) <= width else first[: width - 3].rstrip() + "..."


def _hooks(args: argparse.Namespace) -> int:
    registry = _registry()
    rows = [{"hook": h.hook, "provider": h.provider, "conn_types": list(h.conn_types)} for h in registry.hooks]
    print_rows(rows, ["hook", "provider", "conn_types"], args.output)
    _warn_errors(registry)
    return 0


def _connection_types(args: argparse.Namespace) -> int:
    registry = _registry()
    infos = list(registry.connection_types.values())
    if args.output == "json":
        print_rows([ct.as_dict() for ct in infos], ["conn_type", "display_name", "hook", "provider", "fields"], "json")
    else:
        rows = [
            {
                "conn_type": ct.conn_type,
                "display_name": ct.display_name,
                "provider": ct.provider,
                "hook": ct.hook,
                "fields": [f"{name}*" if spec.secret else name for name, spec in ct.fields.items()],
            }
            for ct in infos
        ]
        print_rows(rows, ["conn_type", "display_name", "provider", "hook", "fields"], "table")
        if infos:
            print("(* secret: stored encrypted and masked)")
    _warn_errors(registry)
    return 0


def _operators(args: argparse.Namespace) -> int:
    registry = _registry()
    kinds = tuple(dict.fromkeys(args.kind or ("operators", "sensors", "transfers")))
    rows = [{"class": c.path, "kind": c.kind, "provider": c.provider} for c in registry.components(*kinds)]
    print_rows(rows, ["class", "kind", "provider"], args.output)
    _warn_errors(registry)
    return 0
