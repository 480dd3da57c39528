"""``zonda celery worker [-q q1,q2] [-c N]``: a Celery worker running Zonda's task from the named queues.

A worker needs only the broker URL, the metastore URL and the DAG files (``[core] dags_folder``): no shared disk
with the scheduler. SIGTERM is Celery's warm shutdown: the worker takes no new messages and finishes the tasks
it holds before it exits (messages it had not started go back to the broker, as they are acknowledged late).
Beside the pool, the worker serves its tries' logs to signed requests (:mod:`zonda_celery.worker_logs`).
"""

from __future__ import annotations

import argparse
import os
import socket

from zonda.exceptions import ZondaConfigError


def register(parser: argparse.ArgumentParser) -> None:
    from zonda.cli._common import command, subcommands

    subs = subcommands(parser)
    worker = command(subs, "worker", run_worker, "Run a Celery worker for the CeleryExecutor")
    worker.add_argument(
        "-q",
        "--queues",
        default="default",
        help="Comma-separated queues to take tasks from (the operators' `queue`); default: default",
    )
    worker.add_argument(
        "-c", "--concurrency", type=int, default=None, help="How many tasks run at once (default: CPU count)"
    )
    worker.add_argument(
        "--hostname", default=None, help="The worker's node name (default: zonda-<pid>@<host>, unique per process)"
    )
    from zonda_celery.flower_command import register as register_flower

    register_flower(subs)


def parse_queues(text: str) -> list[str]:
    """``a,b`` as ``["a", "b"]``; a one-line error for an empty list or an empty name."""
    queues = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in queues):
        raise ZondaConfigError(f"invalid --queues {text!r}: give comma-separated queue names, e.g. -q default,etl")
    return queues


def run_worker(args: argparse.Namespace) -> int:
    from zonda.cli._common import settings
    from zonda_celery.app import build_app

    queues = parse_queues(args.queues)
    if args.concurrency is not None and args.concurrency < 1:
        raise ZondaConfigError(f"invalid --concurrency {args.concurrency}: give 1 or more")
    current = settings()
    if str(current.sql_alchemy_conn).startswith("sqlite"):
        raise ZondaConfigError(
            "a Celery worker cannot use a SQLite metastore (a file on one machine); set [database] "
            "sql_alchemy_conn to PostgreSQL or MySQL/MariaDB"
        )
    app = build_app(current)
    from zonda_celery.worker_logs import serve_worker_logs

    log_server = serve_worker_logs(current)
    hostname = args.hostname or f"zonda-{os.getpid()}@{socket.gethostname()}"
    argv = ["worker", "--loglevel=INFO", "--pool=prefork", f"--queues={','.join(queues)}", f"--hostname={hostname}"]
    if args.concurrency is not None:
        argv.append(f"--concurrency={args.concurrency}")
    try:
        app.worker_main(argv=argv)
    finally:
        log_server.stop()
    return 0


def show_help(args: argparse.Namespace) -> int:
    """``zonda celery`` without a sub-command."""
    args.group_parser.print_help()
    return 0
