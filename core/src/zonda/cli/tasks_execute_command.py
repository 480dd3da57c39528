"""``zonda tasks execute --workload @FILE | - | JSON``: run one try of one task instance from a workload.

The worker entry point of every executor that runs tasks outside the scheduler's machine (Celery, Kubernetes):
any machine with the DAG files and the metastore URL runs the try the workload names, through the same
:func:`~zonda.executors.workload.execute_workload` the LocalExecutor's task processes call. Parse, call, print.

Exit codes: 0 the try ran and ended success, skipped, deferred or up_for_reschedule; 1 it ran and failed (or
will retry), or its DAG could not be loaded (recorded as a failed try); 2 the workload is invalid (nothing ran,
nothing was written); 3 not claimed: another process claimed this try, or the instance is not queued for it
(nothing ran).
"""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = (
    "exit codes: 0 the try ran and succeeded (or was skipped, deferred, rescheduled); 1 it ran and failed, or its "
    "DAG could not be loaded; 2 the workload is invalid; 3 not claimed (another process has this try, or it is "
    "not queued for it). `--print-schema` prints the workload's JSON Schema."
)

#: End states after which the command exits 0 (as ``zonda tasks run``).
OK_STATES = frozenset({"success", "skipped", "deferred", "up_for_reschedule"})


def register(subs: argparse._SubParsersAction) -> None:
    from zonda.cli._common import command

    parser = command(
        subs,
        "execute",
        run,
        "Run one try of one task instance from a JSON workload, as an executor's worker does (Celery, Kubernetes)",
    )
    parser.epilog = EPILOG
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--workload",
        metavar="@FILE|-|JSON",
        help="The workload: @path to read a file, - to read standard input, or the JSON text itself",
    )
    source.add_argument(
        "--print-schema", action="store_true", help="Print the workload's JSON Schema (this version) and exit"
    )


def run(args: argparse.Namespace) -> int:
    from zonda.cli._common import settings
    from zonda.executors.workload import WorkloadOutcome, WorkloadRunner, _on_sigterm, execute_workload
    from zonda.executors.workload_schema import (
        EXIT_NOT_CLAIMED,
        InvalidWorkload,
        json_schema,
        parse_workload,
        read_workload_text,
    )

    if args.print_schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    try:
        document = parse_workload(read_workload_text(args.workload))
        current = settings()
        workload = document.to_workload(current)
    except InvalidWorkload as exc:
        print(f"error: invalid workload: {exc}", file=sys.stderr)
        return InvalidWorkload.exit_code
    import signal

    from zonda.metastore.db import Metastore

    metastore = Metastore.from_settings(current)
    try:  # a worker never creates a metastore: an uninitialized or outdated one is a one-line error
        metastore.ensure_ready(auto_init=False)
    finally:
        metastore.dispose()
    print(f"Executing {workload.label}.", flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # as in an executor's task process
    try:
        outcome = execute_workload(WorkloadRunner(home=str(current.home), settings=current), workload)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if outcome.kind != WorkloadOutcome.FINISHED:
        from zonda.masking import get_masker

        print(f"error: {get_masker().redact_text(outcome.message)}", file=sys.stderr)
        return EXIT_NOT_CLAIMED if outcome.kind == WorkloadOutcome.NOT_CLAIMED else 1
    print(f"Task {workload.label}: {outcome.state}")
    return 0 if outcome.state in OK_STATES else 1
