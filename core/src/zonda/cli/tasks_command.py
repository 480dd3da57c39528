"""``zonda tasks list | test | run | execute | logs | states-for-dag-run | why | clear``.

Parse, call an operation (:mod:`zonda.operations`), print: no SQL here (tests/core/test_cli_holds_no_sql.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zonda.cli._common import add_output_argument, command, print_rows, print_table, settings, subcommands

#: ``tasks states-for-dag-run --output json`` fields (the first six are the contract).
STATE_FIELDS = ["task_id", "map_index", "state", "try_number", "start_date", "end_date", "duration", "operator"]


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)
    listing = command(subs, "list", _list, "List a DAG's tasks")
    listing.add_argument("dag_id")
    add_output_argument(listing)
    test = command(
        subs,
        "test",
        _test,
        "Run one task without its dependencies, recording no state; print its log and XComs",
    )
    test.add_argument("dag_id")
    test.add_argument("task_id")
    test.add_argument(
        "logical_date",
        nargs="?",
        metavar="DATE_OR_RUN_ID",
        help="Logical date (ISO, default now) or run id; upstream XComs are read from a recorded run that matches",
    )
    test.add_argument("--map-index", type=int, default=-1, help="Run this instance of a mapped task")
    test.add_argument("--conf", "-c", help="JSON object of params")

    run = command(
        subs,
        "run",
        _run,
        "Run one task instance of an existing DAG run in this process, as a worker does, recording its state",
    )
    run.add_argument("dag_id")
    run.add_argument("task_id")
    run.add_argument("run_id")
    run.add_argument("--map-index", type=int, default=-1, help="Run this instance of a mapped task")

    from zonda.cli import tasks_execute_command

    tasks_execute_command.register(subs)

    logs = command(
        subs,
        "logs",
        _logs,
        "Print the log of one try of a task instance, in order, from the configured task-log handler",
    )
    logs.add_argument("dag_id")
    logs.add_argument("task_id")
    logs.add_argument("run_id")
    logs.add_argument("--try", dest="try_number", type=int, help="Try number, from 1 (default: the latest)")
    logs.add_argument("--map-index", type=int, default=-1, help="The instance of a mapped task")

    states = command(subs, "states-for-dag-run", _states_for_dag_run, "Show the state of every task instance of a run")
    states.add_argument("dag_id")
    states.add_argument("run_id")
    add_output_argument(states)

    why = command(
        subs,
        "why",
        _why,
        "Say what holds a task instance back: upstream tasks, pool, limits, retry time, pause, no scheduler...",
    )
    why.add_argument("dag_id")
    why.add_argument("task_id")
    why.add_argument("run_id")
    why.add_argument("--map-index", type=int, help="Only this instance of a mapped task (default: every instance)")
    add_output_argument(why)

    clear = command(
        subs, "clear", _clear, "Reset task instances so the scheduler runs them again (their runs go back to queued)"
    )
    clear.add_argument("dag_id")
    clear.add_argument("--task-regex", "-t", help="Only tasks whose id matches this regular expression (re.search)")
    clear.add_argument("--start-date", "-s", help="Only runs with a logical date on or after this (ISO)")
    clear.add_argument("--end-date", "-e", help="Only runs with a logical date on or before this (ISO)")
    clear.add_argument("--run-id", "-r", help="Only this DAG run")
    clear.add_argument("--only-failed", "-f", action="store_true", help="Only failed and upstream_failed instances")
    clear.add_argument("--downstream", "-d", action="store_true", help="Also the matching tasks' downstream tasks")
    clear.add_argument("--upstream", "-u", action="store_true", help="Also the matching tasks' upstream tasks")
    clear.add_argument("--dry-run", action="store_true", help="List what would be cleared; change nothing")
    clear.add_argument("--yes", "-y", action="store_true", help="Do not ask for confirmation")


def _list(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_dag

    dag = load_dag(settings(), args.dag_id)
    rows = [
        {
            "task_id": t.task_id,
            "operator": t.operator_name,
            "trigger_rule": str(t.trigger_rule),
            "upstream": sorted(t.upstream_task_ids),
            "retries": t.retries,
            "mapped": t.is_mapped,
            "task_display_name": getattr(t, "task_display_name", None) or t.task_id,
        }
        for t in dag.topological_order()
    ]
    columns = ["task_id", "operator", "trigger_rule", "upstream", "retries", "mapped"]
    if args.output == "json" or any(row["task_display_name"] != row["task_id"] for row in rows):
        columns.append("task_display_name")
    print_rows(rows, columns, args.output)
    return 0


def _test(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_dag, parse_conf, parse_date, plugin_manager, prepare_task_process
    from zonda.exceptions import ZondaException
    from zonda.runner.single_task import find_recorded_run, test_task

    current = settings()
    conf = parse_conf(args.conf) if args.conf else None
    plugins = plugin_manager(current)
    dag = load_dag(current, args.dag_id, plugins)
    dag.get_task(args.task_id)  # an unknown task id is reported before any metastore is read
    logical_date, run_id = None, None
    try:
        logical_date = parse_date(args.logical_date)
    except ZondaException:
        run_id = args.logical_date  # not a date: the id of a recorded run
    recorded = find_recorded_run(current, dag, logical_date=logical_date, run_id=run_id, plugins=plugins)
    if run_id is not None and recorded is None:
        raise ZondaException(
            f"{args.logical_date!r} is neither a date (ISO, e.g. 2024-01-01) nor the id of a run of DAG "
            f"{args.dag_id!r}; `zonda dags list-runs {args.dag_id}` lists its runs"
        )
    prepare_task_process(current, plugins)
    try:
        outcome = test_task(
            dag,
            args.task_id,
            logical_date,
            settings=current,
            conf=conf,
            map_index=args.map_index,
            echo=True,
            plugins=plugins,
            recorded=recorded,
        )
    finally:
        if recorded is not None:
            recorded.close()
    if recorded is not None:
        print(f"\nUpstream XComs were read from run {recorded.run.run_id} (nothing was written to it).")
    print(f"\nTask {outcome.ti.label}: {outcome.ti.state.value}")
    if outcome.ti.error:
        print(f"error: {outcome.ti.error}")
    if outcome.xcoms:
        from zonda.masking import get_masker

        masker = get_masker()
        print("XComs:")
        for key, value in outcome.xcoms.items():
            # Secrets the task saw, values under sensitive keys, and URL credentials are shown as ***.
            text = masker.redact_text(repr(masker.redact(value, key)))
            print(f"  {key} = {text if len(text) < 500 else text[:500] + '...'}")
    else:
        print("XComs: (none)")
    return 0 if outcome.ti.state.value in ("success", "skipped") else 1


# --- task instances in the metastore ------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    import signal

    from zonda.cli._loading import open_metastore
    from zonda.executors.workload import WorkloadRunner, _on_sigterm
    from zonda.operations.task_runs import instance_outcome, prepare_manual_run
    from zonda.runner.logs import attempt_log_path

    current = settings()
    metastore = open_metastore(current)
    label = f"{args.dag_id}.{args.task_id}" + (f"[{args.map_index}]" if args.map_index >= 0 else "")
    try:
        engine = metastore.engine
        workload = prepare_manual_run(engine, args.dag_id, args.task_id, args.run_id, args.map_index)
        print(f"Running {workload.label} in this process.", flush=True)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)  # as in a worker's task process
        try:
            WorkloadRunner(home=str(current.home)).run(workload)
        finally:
            signal.signal(signal.SIGTERM, previous)
        after = instance_outcome(engine, workload.ti_id)
    finally:
        metastore.dispose()
    state = after.state or "none"
    log_path = attempt_log_path(
        current.log_folder, args.dag_id, args.run_id, args.task_id, args.map_index, after.try_number or 1
    )
    print(f"Task {label} ({args.run_id}, try {after.try_number}): {state}")
    if log_path.exists():
        print(f"  log: {log_path}")
    if state == "deferred":
        print("  deferred: a running triggerer (zonda triggerer / zonda standalone) resumes it")
    return 0 if state in ("success", "skipped", "deferred", "up_for_reschedule") else 1


def _logs(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore, plugin_manager, prepare_task_process
    from zonda.operations.logs import locate_try, read_log
    from zonda.runner.log_handlers import load_task_log_handler

    current = settings()
    metastore = open_metastore(current)
    try:
        log_try = locate_try(
            metastore.engine,
            args.dag_id,
            args.task_id,
            args.run_id,
            map_index=args.map_index,
            try_number=args.try_number,
        )
    finally:
        metastore.dispose()
    plugins = plugin_manager(current)
    prepare_task_process(current, plugins)  # a remote handler looks its connection up like a task would
    task_log = read_log(load_task_log_handler(current, plugins=plugins), log_try)
    print(
        f"*** {log_try.label} ({args.run_id}), try {log_try.try_number} of {log_try.tries}: from {task_log.source}",
        file=sys.stderr,
    )
    for line in task_log.lines:
        print(line)
    return 0


def _states_for_dag_run(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore
    from zonda.operations.task_instances_read import states_for_dag_run

    metastore = open_metastore(settings())
    try:
        records = states_for_dag_run(metastore.engine, args.dag_id, args.run_id)
    finally:
        metastore.dispose()
    instances = [r.as_dict() for r in records]
    if args.output == "table":
        for inst in instances:
            inst["state"] = inst["state"] or "none"
            if inst["duration"] is not None:
                inst["duration"] = f"{inst['duration']:.3f}"
    fields = list(STATE_FIELDS)
    if args.output == "json" or any(r.rendered_map_index for r in records):
        fields.insert(fields.index("map_index") + 1, "rendered_map_index")  # mapped instances' readable names
    print_rows(instances, fields, args.output)
    if not records and args.output == "table":
        print(f"(run {args.run_id} has no task instances yet: a scheduler creates them when it starts the run)")
    return 0


def _why(args: argparse.Namespace) -> int:
    import json

    from zonda.cli._loading import open_metastore
    from zonda.operations.why import why

    current = settings()
    metastore = open_metastore(current)
    try:
        report = why(metastore.engine, current, args.dag_id, args.task_id, args.run_id, args.map_index)
    finally:
        metastore.dispose()
    if args.output == "json":
        data = {
            "dag_id": report.dag_id,
            "task_id": report.task_id,
            "run_id": report.run_id,
            "run_state": report.run_state,
            "instances": [
                {"map_index": i.map_index, "state": i.state or "none", "try_number": i.try_number}
                for i in report.instances
            ],
            "blocked": report.blocked,
            "blockers": [
                {"code": b.code, "message": b.message, "map_index": b.map_index, "details": b.details}
                for b in report.blockers
            ],
            "notes": list(report.notes),
        }
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    states = ", ".join(
        (f"[{i.map_index}] " if i.map_index >= 0 else "") + (i.state or "none") for i in report.instances
    )
    print(
        f"{report.dag_id}.{report.task_id} in run {report.run_id} ({report.run_state}): "
        f"{states or 'no task instance yet'}"
    )
    if report.blockers:
        print("Blocked by:")
        for blocker in report.blockers:
            print(f"  - [{blocker.code}] {blocker.message}")
    else:
        print("Nothing blocks it.")
    for note in report.notes:
        print(f"  note: {note}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from zonda.cli._loading import open_metastore, parse_date
    from zonda.operations.task_instances import Selection, clear_task_instances

    selection = Selection(
        args.dag_id,
        task_regex=args.task_regex,
        run_ids=[args.run_id] if args.run_id else None,
        start_date=parse_date(args.start_date),
        end_date=parse_date(args.end_date),
        upstream=args.upstream,
        downstream=args.downstream,
        only_failed=args.only_failed,
    )
    metastore = open_metastore(settings())
    try:
        engine = metastore.engine
        preview = clear_task_instances(engine, selection, dry_run=True)
        if not preview.instances:
            print("No task instances match; nothing was cleared.")
            return 0
        if args.dry_run:
            _show(preview.instances)
            print(
                f"A clear would reset these {len(preview.instances)} task instance(s) and queue "
                f"{len(preview.runs)} run(s) again; nothing was changed."
            )
            return 0
        if not args.yes and not _confirm(preview.instances):
            print("Cancelled; nothing was changed.", file=sys.stderr)
            return 1
        outcome = clear_task_instances(engine, selection)
        alive = _alive_schedulers(engine)
    finally:
        metastore.dispose()
    print(
        f"Cleared {outcome.changed} task instance(s) in {len(outcome.runs)} run(s) of {args.dag_id}; "
        "those runs are queued again."
    )
    if outcome.changed_meanwhile:
        print(
            f"{outcome.changed_meanwhile} task instance(s) changed state while this ran and were left as they are; "
            "run the clear again to include them.",
            file=sys.stderr,
        )
    if outcome.handed_to_scheduler:
        names = ", ".join(outcome.handed_to_scheduler)
        print(f"Run(s) {names} came from `zonda dags test`; they are manual runs now, which the scheduler runs.")
    if outcome.dag_paused:
        print(
            f"warning: DAG {args.dag_id} is paused, so the scheduler does not run them until "
            f"`zonda dags unpause {args.dag_id}`",
            file=sys.stderr,
        )
    if alive:
        print(f"The running scheduler runs them; follow them with `zonda dags list-runs {args.dag_id}`.")
    else:
        print(
            "No scheduler is running: start `zonda scheduler` (or `zonda standalone`) to run them, or rerun one task "
            f"in this process with `zonda tasks run {args.dag_id} TASK_ID RUN_ID`."
        )
    return 0


def _alive_schedulers(engine: Any) -> list[Any]:
    from zonda.scheduler import jobs

    timeout = float(settings().get("scheduler", "scheduler_heartbeat_timeout"))
    return jobs.alive_jobs(engine, "scheduler", timeout)


def _show(rows: list[Any]) -> None:
    shown = rows[:20]
    print_table(
        [[r.run_id, r.task_id, str(r.map_index), r.state.value, str(r.try_number)] for r in shown],
        ["run_id", "task_id", "map_index", "state", "try_number"],
    )
    if len(rows) > len(shown):
        print(f"... and {len(rows) - len(shown)} more")


def _confirm(rows: list[Any]) -> bool:
    _show(rows)
    try:
        answer = input(f"Clear these {len(rows)} task instance(s)? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in {"y", "yes"}
