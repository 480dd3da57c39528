"""``zonda version``."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_version)
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table", help="Output format")


def _version(args: argparse.Namespace) -> int:
    from zonda.version import __version__

    if args.output == "json":
        import json
        import platform

        print(json.dumps({"version": __version__, "python": platform.python_version()}))
    else:
        print(__version__)
    return 0
