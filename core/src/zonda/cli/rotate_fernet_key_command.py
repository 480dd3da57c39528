"""Placeholder: this command group is being written (ecosystem issue)."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_todo)


def _todo(args: argparse.Namespace) -> int:
    print("not implemented yet")
    return 2
