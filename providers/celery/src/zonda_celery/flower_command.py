"""``zonda celery flower [--port N] [--address A]``: Flower, the Celery monitor, for this installation's broker.

Flower shows every worker and lets whoever reaches it shut workers down or change their pools, so it is never
started open: it refuses to run without ``[celery] flower_basic_auth``, and listens on 127.0.0.1 unless
``[celery] flower_host`` or ``--address`` says otherwise. Options are handed to Flower inside this process (not on
a command line another user could read in ``ps``), and a ``flowerconfig.py`` lying in the working directory is
not executed.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from zonda.exceptions import ZondaConfigError

if TYPE_CHECKING:
    from zonda.config import Settings

HOW_TO_SET_AUTH = (
    "set [celery] flower_basic_auth to user:password (or ZONDA__CELERY__FLOWER_BASIC_AUTH; several users "
    "comma-separated), with a long random password"
)


def register(subs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from zonda.cli._common import command

    flower = command(subs, "flower", run_flower, "Start Flower (the Celery monitor) behind basic auth")
    flower.add_argument("--port", type=int, default=None, help="Port (default: [celery] flower_port, 5555)")
    flower.add_argument(
        "--address", default=None, help="Address to listen on (default: [celery] flower_host, 127.0.0.1)"
    )


def basic_auth(settings: Settings) -> list[str]:
    """The ``user:password`` pairs of ``[celery] flower_basic_auth``; a one-line error when unset or malformed."""
    from zonda.masking import mask_secret

    raw = settings.get("celery", "flower_basic_auth")
    if raw is None or not str(raw).strip():
        raise ZondaConfigError(f"zonda celery flower refuses to start without basic auth: {HOW_TO_SET_AUTH}")
    pairs = [pair.strip() for pair in str(raw).split(",")]
    for number, pair in enumerate(pairs, 1):
        user, _, password = pair.partition(":")
        if not user or not password:
            raise ZondaConfigError(
                f"[celery] flower_basic_auth entry {number} is not user:password (an empty user or password); "
                f"{HOW_TO_SET_AUTH}"
            )
        mask_secret(password)
    return pairs


def flower_argv(settings: Settings, port: int | None, address: str | None) -> list[str]:
    """The arguments Celery's ``flower`` command gets (parsed in this process, never shown to other users)."""
    chosen_port = int(settings.get("celery", "flower_port")) if port is None else port
    if not 0 <= chosen_port <= 65535:
        raise ZondaConfigError(f"invalid Flower port {chosen_port}: give 1 to 65535 (0: any free port)")
    chosen_address = str(settings.get("celery", "flower_host")) if address is None else address
    return [
        "flower",
        f"--port={chosen_port}",
        f"--address={chosen_address}",
        f"--basic-auth={','.join(basic_auth(settings))}",
        # Flower executes ./flowerconfig.py when present; an empty file instead.
        f"--conf={os.devnull}",
    ]


def run_flower(args: argparse.Namespace) -> int:
    from zonda.cli._common import settings
    from zonda_celery.app import build_app

    current = settings()
    argv = flower_argv(current, args.port, args.address)
    build_app(current).start(argv=argv)
    return 0
