"""``zonda version``."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_version)


def _version(args: argparse.Namespace) -> int:
    from zonda.version import __version__

    print(__version__)
    return 0
