"""``zonda config get-value | list``."""

from __future__ import annotations

import argparse

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands


def _mask(value: object) -> str:
    """Secrets are never printed; a URL keeps everything but its password (and secret query values), so it
    stays useful."""
    from zonda.masking import MASK, redact_url_secrets

    text = str(value)
    return redact_url_secrets(text) if "://" in text else MASK


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    get = command(subs, "get-value", _get_value, "Print the value of one key")
    get.add_argument("section")
    get.add_argument("key")
    add_output_argument(get)
    listing = command(subs, "list", _list, "List every key, its value and where it came from")
    listing.add_argument("--section", help="Only this section")
    add_output_argument(listing)


def _get_value(args: argparse.Namespace) -> int:
    current = settings()
    value = current.get(args.section, args.key)
    if args.output == "json":
        row = {
            "section": args.section,
            "key": args.key,
            "value": value,
            "source": current.source(args.section, args.key),
        }
        print_rows([row], ["section", "key", "value", "source"], "json")
    else:
        print("" if value is None else value)
    return 0


def _list(args: argparse.Namespace) -> int:
    from zonda.masking import is_sensitive_name

    current = settings()
    rows = []
    for option, section, key, value in current.items():
        if args.section and section != args.section:
            continue
        sensitive = (option is not None and option.sensitive) or is_sensitive_name(key)
        shown = _mask(value) if sensitive and value else value
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
