"""``zonda rotate-fernet-key [--generate]``.

Rotation: put a new key first in ``[core] fernet_key`` and keep the old one after it
(``fernet_key = "NEW,OLD"``), run this command, then remove the old key. ``--generate`` prints a fresh key.
"""

from __future__ import annotations

import argparse

from zonda.cli._common import settings


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_rotate)
    parser.add_argument(
        "--generate", action="store_true", help="Print a new random Fernet key and exit (changes nothing)"
    )


def _rotate(args: argparse.Namespace) -> int:
    if args.generate:
        import sys

        from zonda.crypto import generate_key

        print(generate_key())
        print(
            "(not saved: set it as [core] fernet_key in zonda.toml or ZONDA__CORE__FERNET_KEY; a new installation "
            "needs none of this, Zonda writes a key to zonda.toml the first time one is needed)",
            file=sys.stderr,
        )
        return 0
    from zonda.cli._loading import open_metastore
    from zonda.secrets.metastore import MetastoreBackend

    current = settings()
    backend = MetastoreBackend(open_metastore(current), current)
    changed = backend.rotate_fernet_key()
    variables = backend.rotate_variables()
    print(
        f"re-encrypted {changed} connection(s) and {variables} variable(s) with the first key of [core] fernet_key; "
        "keys listed after it can now be removed"
    )
    return 0
