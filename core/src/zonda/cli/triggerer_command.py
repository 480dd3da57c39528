"""``zonda triggerer``: the asyncio service that runs the triggers of deferred tasks. SIGTERM or Ctrl+C stops
it gracefully."""

from __future__ import annotations

import argparse

from zonda.cli._common import settings


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_triggerer)
    parser.add_argument(
        "--capacity", type=int, default=1000, help="Most triggers this triggerer runs at once (default 1000)"
    )


def _triggerer(args: argparse.Namespace) -> int:
    import threading

    from zonda.exceptions import ZondaException
    from zonda.services import configure_logging, load_service, stop_on_signals

    if args.capacity < 1:
        raise ZondaException("--capacity must be at least 1")
    current = settings()
    configure_logging(current)
    triggerer_cls = load_service("zonda.triggerer", "Triggerer", "the triggerer")
    stop = threading.Event()
    with stop_on_signals(stop):
        triggerer_cls(current, capacity=args.capacity).run(stop)
    return 0
