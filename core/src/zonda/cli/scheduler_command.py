"""``zonda scheduler``: the scheduler, with the DAG processor in a thread (``--no-dag-processor`` to run it
elsewhere). SIGTERM or Ctrl+C stops it gracefully: running tasks get ``[scheduler] shutdown_grace_period`` seconds,
then are terminated (their ``on_kill`` runs), then the job row is ended. The DAGs and plugins folders are created
on the first start."""

from __future__ import annotations

import argparse

from zonda.cli._common import settings


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_scheduler)
    parser.add_argument(
        "--num-runs",
        "-n",
        type=int,
        default=None,
        metavar="N",
        help="Stop after N scheduler passes (default: run until stopped)",
    )
    parser.add_argument(
        "--no-dag-processor",
        action="store_true",
        help="Do not parse DAG files in this process (another process runs the DAG processor)",
    )


def _scheduler(args: argparse.Namespace) -> int:
    from zonda.cli._loading import plugin_manager
    from zonda.exceptions import ZondaException
    from zonda.services import configure_logging, run_scheduler

    if args.num_runs is not None and args.num_runs < 1:
        raise ZondaException("--num-runs must be at least 1 (or leave it out to run until stopped)")
    current = settings()
    configure_logging(current)
    run_scheduler(
        current,
        plugins=plugin_manager(current),
        dag_processor=not args.no_dag_processor,
        max_passes=args.num_runs,
    )
    return 0
