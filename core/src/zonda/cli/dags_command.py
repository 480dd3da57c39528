"""``zonda dags list | list-runs | list-import-errors | show | test | trigger | pause | unpause | delete | backfill``.

Parse, call an operation (:mod:`zonda.operations`), print: no SQL here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands
from zonda.cli.dags_remote import add_api_url_argument

RUN_STATES = ("queued", "running", "success", "failed")
#: ``dags list-runs --output json`` fields (the first six are the contract).
RUN_FIELDS = [
    "run_id",
    "state",
    "logical_date",
    "queued_at",
    "start_date",
    "end_date",
    "dag_id",
    "run_type",
    "data_interval_start",
    "data_interval_end",
]
RUN_TABLE_COLUMNS = ["run_id", "state", "run_type", "logical_date", "start_date", "end_date"]


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    listing = command(subs, "list", _list, "List the DAGs found in the DAGs folder")
    add_output_argument(listing)
    errors = command(subs, "list-import-errors", _list_import_errors, "List DAG files that failed to import")
    add_output_argument(errors)
    show = command(subs, "show", _show, "Show a DAG's tasks and dependencies")
    show.add_argument("dag_id")
    show.add_argument("--format", choices=("text", "dot"), default="text", help="Text tree or Graphviz dot")
    add_output_argument(show)
    test = command(subs, "test", _test, "Run a whole DAG once in this process and record it in the metastore")
    test.add_argument("dag_id")
    test.add_argument("logical_date", nargs="?", help="Logical date (ISO), default now")
    test.add_argument("--conf", "-c", help="JSON object of params / run conf")
    test.add_argument("--quiet", "-q", action="store_true", help="Print only the final state line")

    runs = command(subs, "list-runs", _list_runs, "List a DAG's runs, newest first")
    runs.add_argument("dag_id")
    runs.add_argument("--state", choices=RUN_STATES, help="Only runs in this state")
    runs.add_argument("--start-date", "-s", help="Only runs with a logical date on or after this (ISO)")
    runs.add_argument("--end-date", "-e", help="Only runs with a logical date on or before this (ISO)")
    add_api_url_argument(runs)
    add_output_argument(runs)

    trigger = command(subs, "trigger", _trigger, "Queue a manual DAG run; a running scheduler runs it")
    trigger.add_argument("dag_id")
    trigger.add_argument("--conf", "-c", help="JSON object of params / run conf, validated against the params")
    trigger.add_argument("--logical-date", "-l", help="Logical date (ISO), default now")
    trigger.add_argument("--run-id", "-r", help="Run id, default manual__<logical date>")
    add_api_url_argument(trigger)
    add_output_argument(trigger)

    pause = command(subs, "pause", _pause, "Pause a DAG: the scheduler creates no new runs for it")
    pause.add_argument("dag_id")
    unpause = command(subs, "unpause", _unpause, "Unpause a DAG: the scheduler creates its runs again")
    unpause.add_argument("dag_id")
    delete = command(
        subs, "delete", _delete, "Delete a DAG's runs, task instances and XComs, and its row (the file stays)"
    )
    delete.add_argument("dag_id")
    delete.add_argument("--yes", "-y", action="store_true", help="Do not ask for confirmation")

    backfill = command(
        subs, "backfill", _backfill, "Create a run for every schedule interval between two dates and follow them"
    )
    backfill.add_argument("dag_id")
    backfill.add_argument("--start-date", "-s", required=True, help="First logical date (ISO), inclusive")
    backfill.add_argument("--end-date", "-e", required=True, help="Last logical date (ISO), inclusive")
    backfill.add_argument("--conf", "-c", help="JSON object of params / run conf for every run")
    backfill.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Show progress until every run ended (default); --no-wait only queues them",
    )
    backfill.add_argument("--timeout", type=float, default=3600.0, help="Seconds --wait waits at most (default 3600)")
    backfill.add_argument(
        "--local",
        action="store_true",
        help="Run each interval in this process, one after the other, instead of queueing runs for a scheduler",
    )
    backfill.add_argument("--dry-run", action="store_true", help="Only print the intervals a backfill would run")

    from zonda.cli.dags_port_command import register as register_port

    register_port(subs)


def _list(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_bag

    bag = load_bag(settings())
    rows = [
        {
            "dag_id": dag.dag_id,
            "fileloc": dag.fileloc,
            "schedule": dag.schedule,
            "tags": dag.tags,
            "tasks": dag.task_count,
            "description": dag.description,
            "dag_display_name": dag.dag_display_name or dag.dag_id,
        }
        for dag in sorted(bag.dags.values(), key=lambda d: d.dag_id)
    ]
    columns = ["dag_id", "fileloc", "schedule", "tags", "tasks", "description"]
    if args.output == "json" or any(row["dag_display_name"] != row["dag_id"] for row in rows):
        columns.append("dag_display_name")
    print_rows(rows, columns, args.output)
    if bag.import_errors and args.output == "table":
        print(
            f"\n{len(bag.import_errors)} file(s) failed to import; see `zonda dags list-import-errors`",
            file=sys.stderr,
        )
    _record_errors(bag)
    unschedulable = _scheduling_errors()
    if unschedulable and args.output == "table":
        names = ", ".join(row["dag_id"] for row in unschedulable[:3])
        print(
            f"{len(unschedulable)} DAG(s) the scheduler cannot schedule ({names}); see `zonda dags list-import-errors`",
            file=sys.stderr,
        )
    return 0


def _list_import_errors(args: argparse.Namespace) -> int:
    """The folder's current errors: every file is parsed now (isolated, as the DAG processor parses), so a fresh
    home where no scheduler ran shows them too. The metastore, when one exists, is brought up to date with
    them (this parse replaces what a processor recorded for the same files, and drops errors of files gone)."""
    from zonda.cli._loading import load_bag

    bag = load_bag(settings())
    _record_errors(bag)
    from zonda.secrets import mask_stored_texts

    found = sorted(bag.import_errors.items())
    # DAGs that import but that the scheduler cannot schedule (dag.scheduling_error) are problems of the same
    # kind for a user: listed here too, after the files.
    found += [(row["fileloc"], f"DAG {row['dag_id']!r}: {row['error']}") for row in _scheduling_errors()]
    masked = mask_stored_texts([error for _, error in found], settings=settings())
    rows = [{"filename": f, "error": e} for (f, _), e in zip(found, masked, strict=True)]
    if args.output == "json":
        print_rows(rows, ["filename", "error"], "json")
    elif not rows:
        print("No import errors.")
    else:
        for row in rows:
            print(f"{row['filename']}\n{row['error']}\n")
    return 1 if rows else 0


def _record_errors(bag: object) -> None:
    """Keep the metastore's import errors current when a metastore already exists (never create one here)."""
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore

    try:
        from zonda.operations.import_errors import record_import_errors

        metastore = Metastore.existing(load_settings())
        if metastore is None:
            return
        try:
            metastore.ensure_ready(auto_init=False)
            record_import_errors(metastore, bag)
        finally:
            metastore.dispose()
    except Exception as exc:  # the listing itself must still work without a usable metastore
        print(f"warning: import errors not recorded in the metastore: {exc}", file=sys.stderr)


def _scheduling_errors() -> list[dict[str, Any]]:
    """Active DAGs the scheduler reported it cannot schedule (``dag.scheduling_error``), by DAG id."""
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore

    try:
        metastore = Metastore.existing(load_settings())
        if metastore is None:
            return []
        from zonda.operations.dags import scheduling_problems

        try:
            problems = scheduling_problems(metastore.engine)
        finally:
            metastore.dispose()
        return [{"dag_id": p.dag_id, "fileloc": p.fileloc, "error": p.error} for p in problems]
    except Exception as exc:  # the listing itself must still work without a usable metastore
        print(f"warning: could not read the scheduler's DAG problems from the metastore: {exc}", file=sys.stderr)
        return []


def _show(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_dag

    dag = load_dag(settings(), args.dag_id)
    order = dag.topological_order()
    if args.output == "json":
        import json

        from zonda.masking import get_masker
        from zonda.serialization import serialize_dag

        # Param defaults named like secrets (api_token, db_password...) and known secrets are shown as ***.
        print(json.dumps(get_masker().redact(json.loads(serialize_dag(dag)[0]))))
        return 0
    if args.format == "dot":
        print(f'digraph "{dag.dag_id}" {{\n  rankdir=LR;')
        for task in order:
            print(f'  "{task.task_id}" [label="{task.task_id}\\n{task.operator_name}"];')
        for task in order:
            for child in sorted(task.downstream_task_ids):
                print(f'  "{task.task_id}" -> "{child}";')
        print("}")
        return 0
    print(f"DAG {dag.dag_id}  schedule={dag.timetable.summary}  tasks={len(order)}")
    if dag.description:
        print(f"  {dag.description}")
    for task in order:
        upstream = ", ".join(sorted(task.upstream_task_ids)) or "-"
        extra = " (mapped)" if task.is_mapped else ""
        print(f"  {task.task_id} [{task.operator_name}{extra}, {task.trigger_rule}] <- {upstream}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from zonda.cli._loading import (
        load_dag,
        open_metastore,
        parse_conf,
        parse_date,
        plugin_manager,
        prepare_task_process,
    )
    from zonda.cli.run_report import print_run_report
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.store import MetastoreRunStore

    current = settings()
    logical_date = parse_date(args.logical_date)
    conf = parse_conf(args.conf)
    plugins = plugin_manager(current)
    dag = load_dag(current, args.dag_id, plugins)
    metastore = open_metastore(current)
    prepare_task_process(current, plugins)
    runner = InProcessDagRunner(
        dag,
        MetastoreRunStore(metastore),
        settings=current,
        log_folder=current.log_folder,
        xcom_max_size=int(current.get("xcom", "max_size")),
        plugins=plugins,
    )
    result = runner.run(logical_date, conf=conf)
    if args.quiet:
        print(f"DAG run {result.run.run_id}: {result.state}")
    else:
        print_run_report(result, sys.stdout)
        failed = [ti for ti in result.task_instances if ti.state.value == "failed"]
        for ti in failed:
            print(f"\n{ti.label} failed: {ti.error}\n  log: {ti.log_path}")
    return 0 if result.succeeded else 1


# --- runs in the metastore ----------------------------------------------------------------------------------


def _run_dict(run: Any) -> dict[str, Any]:
    values = run.as_dict()
    return {name: values.get(name) for name in RUN_FIELDS}


def _list_runs(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations import dag_runs

    if args.api_url:
        from zonda.cli import dags_remote

        rows = dags_remote.list_runs(args, _date(args.start_date), _date(args.end_date))
        print_rows(rows, RUN_FIELDS if args.output == "json" else RUN_TABLE_COLUMNS, args.output)
        return 0
    metastore = open_metastore(settings())
    try:
        runs = dag_runs.list_runs(
            metastore.engine,
            args.dag_id,
            states=[args.state] if args.state else None,
            logical_date_from=_date(args.start_date),
            logical_date_to=_date(args.end_date),
        )
    finally:
        metastore.dispose()
    rows = [_run_dict(run) for run in runs]
    print_rows(rows, RUN_FIELDS if args.output == "json" else RUN_TABLE_COLUMNS, args.output)
    return 0


def _date(value: str | None) -> Any:
    from zonda.cli._loading import parse_date

    return parse_date(value)


def _trigger(args: argparse.Namespace) -> int:
    import json

    from zonda.cli._loading import open_metastore, parse_conf, parse_date
    from zonda.exceptions import ParamValidationError
    from zonda.operations import dag_runs, dags

    current = settings()
    conf = parse_conf(args.conf)
    logical_date = parse_date(args.logical_date)
    if args.api_url:
        from zonda.cli import dags_remote

        return dags_remote.trigger(args, conf, logical_date)
    metastore = open_metastore(current)
    try:
        engine = metastore.engine
        try:
            created = dag_runs.trigger(engine, args.dag_id, conf=conf, logical_date=logical_date, run_id=args.run_id)
        except ParamValidationError as exc:
            reason = " ".join(str(exc).split())
            raise ParamValidationError(
                f"{reason}; pass a --conf that matches the DAG's params (see `zonda dags show {args.dag_id}`)"
            ) from None
        paused = dags.is_paused(engine, args.dag_id)
        alive = _alive_schedulers(engine, current)
    finally:
        metastore.dispose()
    run = _run_dict(created)
    if args.output == "json":
        run["conf"] = conf
        json.dump(run, sys.stdout, default=_iso, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"Queued DAG run {run['run_id']} of {args.dag_id} (logical date {_iso(run['logical_date'])}).")
        if alive:
            print(f"The scheduler runs it; follow it with `zonda dags list-runs {args.dag_id}`.")
        else:
            print(
                "No scheduler is running: start `zonda scheduler` (or `zonda standalone`) to run it; "
                f"follow it with `zonda dags list-runs {args.dag_id}`."
            )
    if paused:
        print(
            f"warning: DAG {args.dag_id} is paused; `zonda dags unpause {args.dag_id}` lets the scheduler run it",
            file=sys.stderr,
        )
    return 0


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _alive_schedulers(engine: Any, current: Any) -> list[Any]:
    from zonda.scheduler import jobs

    return jobs.alive_jobs(engine, "scheduler", float(current.get("scheduler", "scheduler_heartbeat_timeout")))


def _pause(args: argparse.Namespace) -> int:
    return _set_paused(args.dag_id, True)


def _unpause(args: argparse.Namespace) -> int:
    return _set_paused(args.dag_id, False)


def _set_paused(dag_id: str, paused: bool) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations.dags import set_paused

    metastore = open_metastore(settings())
    try:
        set_paused(metastore.engine, dag_id, paused)
    finally:
        metastore.dispose()
    if paused:
        print(f"DAG {dag_id} is paused: the scheduler creates no new runs for it.")
    else:
        print(f"DAG {dag_id} is unpaused: the scheduler creates its runs again.")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations import dag_runs, dags

    metastore = open_metastore(settings())
    try:
        dags.get_dag(metastore.engine, args.dag_id, recent=0)  # an unknown id fails before any question
        if not args.yes:
            runs = len(dag_runs.list_runs(metastore.engine, args.dag_id))
            try:
                answer = input(f"Delete DAG {args.dag_id} and its {runs} run(s) from the metastore? [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in {"y", "yes"}:
                print("Cancelled; nothing was deleted.", file=sys.stderr)
                return 1
        deleted = dags.delete_dag(metastore.engine, args.dag_id)
    finally:
        metastore.dispose()
    print(
        f"Deleted DAG {deleted.dag_id}: {deleted.dag_runs} run(s) and {deleted.task_instances} task instance(s). "
        "If its file is still in the DAGs folder, the DAG comes back (without history) at its next parse."
    )
    return 0


# --- backfill -----------------------------------------------------------------------------------------------


def _backfill(args: argparse.Namespace) -> int:
    from zonda.cli._loading import parse_conf, parse_date
    from zonda.exceptions import ZondaException

    start = parse_date(args.start_date)
    end = parse_date(args.end_date)
    assert start is not None and end is not None
    if start > end:
        raise ZondaException(f"--start-date {args.start_date} is after --end-date {args.end_date}; swap them")
    if args.timeout <= 0:
        raise ZondaException("--timeout must be a positive number of seconds")
    conf = parse_conf(args.conf)
    if args.local:
        return _backfill_local(args, start, end, conf)
    return _backfill_queued(args, start, end, conf)


def _no_intervals(dag_id: str, start: Any, end: Any) -> Exception:
    from zonda.exceptions import ZondaException

    return ZondaException(
        f"no schedule interval of DAG {dag_id!r} starts between {start.isoformat()} and {end.isoformat()}; "
        "widen --start-date / --end-date"
    )


def _print_intervals(intervals: list[Any]) -> None:
    for interval in intervals:
        print(f"  {interval.start.isoformat()} -> {interval.end.isoformat()}")


def _backfill_queued(args: argparse.Namespace, start: Any, end: Any, conf: dict[str, Any]) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations import dag_runs

    current = settings()
    metastore = open_metastore(current)
    try:
        engine = metastore.engine
        plan = dag_runs.plan_backfill(engine, args.dag_id, start, end)
        if not plan.intervals:
            raise _no_intervals(args.dag_id, start, end)
        if args.dry_run:
            print(f"A backfill of {args.dag_id} would queue {len(plan.todo)} run(s):")
            _print_intervals(list(plan.todo))
            return 0
        ids = dag_runs.queue_backfill(engine, plan, conf)
        paused = plan.paused
        skipped = len(plan.intervals) - len(plan.todo)
        print(
            f"Queued {len(ids)} backfill run(s) of {args.dag_id} from {start.isoformat()} to {end.isoformat()}"
            + (f"; {skipped} interval(s) already had a run and were left as they are." if skipped else ".")
        )
        if paused:
            print(
                f"warning: DAG {args.dag_id} is paused; `zonda dags unpause {args.dag_id}` lets the scheduler run it",
                file=sys.stderr,
            )
        alive = _alive_schedulers(engine, current)
        if not alive:
            print(
                "No scheduler is running: start `zonda scheduler` (or `zonda standalone`) to run them, "
                "or use --local to run the intervals in this process."
            )
        else:
            print("The running scheduler executes them.")
        if not args.wait or not ids:
            if ids:
                print(f"Follow them with `zonda dags list-runs {args.dag_id}`.")
            return 0
        failed = _wait_for_runs(engine, args.dag_id, ids, args.timeout)
    finally:
        metastore.dispose()
    return 1 if failed else 0


def progress_bar(done: int, total: int, failed: int, width: int = 20) -> str:
    """``[##########..........] 5/10 runs done, 0 failed``"""
    filled = width if total <= 0 else min(width, (width * done) // total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs done, {failed} failed"


class _Progress:
    """One line redrawn in place on a terminal; a new line per change otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last: str | None = None

    def show(self, line: str) -> None:
        if line == self.last:
            return
        self.last = line
        if self.tty:
            sys.stdout.write("\r" + line)
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        if self.tty and self.last is not None:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _wait_for_runs(engine: Any, dag_id: str, ids: list[int], timeout: float, interval: float = 0.5) -> int:
    """Poll the runs' states until every one ended; the number that failed."""
    import time

    from zonda.exceptions import ZondaException
    from zonda.operations.dag_runs import run_states

    deadline = time.monotonic() + timeout
    progress = _Progress()
    wanted = set(ids)
    try:
        while True:
            states = run_states(engine, wanted)
            failed = sum(1 for s in states.values() if s == "failed")
            done = sum(1 for s in states.values() if s in ("success", "failed"))
            done += len(wanted) - len(states)  # a run deleted meanwhile counts as done
            progress.show(progress_bar(done, len(ids), failed))
            if done >= len(ids):
                break
            if time.monotonic() >= deadline:
                progress.close()
                raise ZondaException(
                    f"the backfill did not finish within --timeout {timeout:g} s ({len(ids) - done} of {len(ids)} "
                    f"runs not done); they keep going under the scheduler: `zonda dags list-runs {dag_id}`"
                )
            time.sleep(interval)
    finally:
        progress.close()
    if failed:
        print(f"{failed} run(s) failed; see `zonda dags list-runs {dag_id} --state failed`.")
    return failed


def _backfill_local(args: argparse.Namespace, start: Any, end: Any, conf: dict[str, Any]) -> int:
    from zonda.cli._loading import load_dag, open_metastore, plugin_manager, prepare_task_process
    from zonda.exceptions import ZondaException
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.store import MetastoreRunStore
    from zonda.scheduler.runs import backfill_intervals

    current = settings()
    plugins = plugin_manager(current)
    dag = load_dag(current, args.dag_id, plugins)
    intervals = backfill_intervals(dag, start, end)  # type: ignore[arg-type]  # a DAG has timetable and dag_id
    if not intervals:
        raise _no_intervals(args.dag_id, start, end)
    if args.dry_run:
        print(f"A local backfill of {args.dag_id} would run {len(intervals)} interval(s):")
        _print_intervals(intervals)
        return 0
    dag.params.resolve(conf)
    metastore = open_metastore(current)
    try:
        alive = _alive_schedulers(metastore.engine, current)
        if alive:
            raise ZondaException(
                f"a scheduler is running (job {alive[0].id}, pid {alive[0].pid}); it would run these runs' tasks "
                "too, so drop --local and let it run the backfill, or stop the scheduler first"
            )
        prepare_task_process(current, plugins)
        runner = InProcessDagRunner(
            dag,
            MetastoreRunStore(metastore),
            settings=current,
            log_folder=current.log_folder,
            xcom_max_size=int(current.get("xcom", "max_size")),
            plugins=plugins,
        )
        print(f"Running {len(intervals)} interval(s) of {args.dag_id} in this process.")
        progress = _Progress()
        failed: list[str] = []
        progress.show(progress_bar(0, len(intervals), 0))
        try:
            for index, interval in enumerate(intervals, start=1):
                result = runner.run(
                    interval.start,
                    conf=conf,
                    run_id=f"backfill__{interval.start.isoformat()}",
                    run_type="backfill",
                )
                if not result.succeeded:
                    failed.append(result.run.run_id)
                progress.show(progress_bar(index, len(intervals), len(failed)))
        finally:
            progress.close()
    finally:
        metastore.dispose()
    for run_id in failed:
        print(f"run {run_id} failed; see `zonda tasks states-for-dag-run {args.dag_id} {run_id}`")
    return 1 if failed else 0
