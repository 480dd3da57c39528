"""``zonda tasks list | test | run | execute | logs | states-for-dag-run | clear``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zonda.cli._common import add_output_argument, command, print_rows, print_table, settings, subcommands

#: ``tasks states-for-dag-run --output json`` fields (the first six are the contract).
STATE_FIELDS = ["task_id", "map_index", "state", "try_number", "start_date", "end_date", "duration", "operator"]
#: States ``tasks run`` queues an instance from; others are refused (clear it first).
RUNNABLE_STATES = (None, "none", "scheduled", "queued", "up_for_retry", "up_for_reschedule")


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
        }
        for t in dag.topological_order()
    ]
    print_rows(rows, ["task_id", "operator", "trigger_rule", "upstream", "retries", "mapped"], args.output)
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


def _find_run(conn: Any, dag_id: str, run_id: str) -> Any:
    from sqlalchemy import select

    from zonda.exceptions import ZondaException
    from zonda.metastore import tables as t

    run = conn.execute(select(t.dag_run).where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.run_id == run_id)).first()
    if run is None:
        if conn.execute(select(t.dag.c.dag_id).where(t.dag.c.dag_id == dag_id)).first() is None:
            from zonda.scheduler.runs import unknown_dag

            raise unknown_dag(conn, dag_id)
        from zonda.suggestions import unknown_name

        recent = conn.execute(
            select(t.dag_run.c.run_id).where(t.dag_run.c.dag_id == dag_id).order_by(t.dag_run.c.id.desc()).limit(1000)
        )
        raise ZondaException(
            unknown_name(
                f"DAG {dag_id!r} has no run {run_id!r}",
                run_id,
                [r[0] for r in recent],
                f"`zonda dags list-runs {dag_id}` lists its runs and `zonda dags trigger {dag_id}` creates one",
            )
        )
    return run


def _run(args: argparse.Namespace) -> int:
    import signal

    from sqlalchemy import select, update

    from zonda.cli._loading import open_metastore
    from zonda.exceptions import TaskNotFound, ZondaException
    from zonda.executors.base import Workload
    from zonda.executors.workload import WorkloadRunner, _on_sigterm
    from zonda.identifiers import validate_run_id
    from zonda.metastore import tables as t
    from zonda.runner.logs import attempt_log_path
    from zonda.scheduler.decisions import create_task_instances
    from zonda.scheduler.runs import load_serialized
    from zonda.suggestions import unknown_name
    from zonda.timezone import utcnow

    validate_run_id(args.run_id)
    current = settings()
    metastore = open_metastore(current)
    ti = t.task_instance
    label = f"{args.dag_id}.{args.task_id}" + (f"[{args.map_index}]" if args.map_index >= 0 else "")
    try:
        engine = metastore.engine
        with engine.begin() as conn:
            sdag = load_serialized(conn, args.dag_id)
            if args.task_id not in sdag.tasks:
                raise TaskNotFound(
                    unknown_name(
                        f"DAG {args.dag_id!r} has no task {args.task_id!r}",
                        args.task_id,
                        sdag.tasks,
                        f"`zonda tasks list {args.dag_id}` lists them",
                    )
                )
            run = _find_run(conn, args.dag_id, args.run_id)
            has_instances = conn.execute(select(ti.c.id).where(ti.c.dag_run_id == run.id).limit(1)).first()
            if has_instances is None:
                create_task_instances(conn, sdag, run)  # what the scheduler does when it starts the run
            row = conn.execute(
                select(ti).where(
                    ti.c.dag_run_id == run.id, ti.c.task_id == args.task_id, ti.c.map_index == args.map_index
                )
            ).first()
            if row is None:
                indexes = [
                    r[0]
                    for r in conn.execute(
                        select(ti.c.map_index)
                        .where(ti.c.dag_run_id == run.id, ti.c.task_id == args.task_id)
                        .order_by(ti.c.map_index)
                    )
                ]
                raise ZondaException(
                    f"run {args.run_id!r} has no instance {label}; its map indexes are "
                    f"{', '.join(map(str, indexes)) or 'none yet'}: pass one with --map-index"
                )
            if row.state not in RUNNABLE_STATES:
                if row.state == "running":
                    raise ZondaException(f"{label} is already running in run {args.run_id!r} (pid {row.pid})")
                raise ZondaException(
                    f"{label} is {row.state} in run {args.run_id!r}; clear it first: zonda tasks clear {args.dag_id} "
                    f"--task-regex '^{args.task_id}$' --run-id {args.run_id} --yes"
                )
            if row.state != "queued":
                now = utcnow()
                conn.execute(
                    update(ti)
                    .where(ti.c.id == row.id)
                    .values(state="queued", queued_dttm=now, queued_by_job_id=None, ready_at=None, updated_at=now)
                )
            fileloc = conn.execute(
                select(t.serialized_dag.c.fileloc).where(t.serialized_dag.c.dag_id == args.dag_id)
            ).scalar()
        fileloc = fileloc or sdag.fileloc
        extra: dict[str, Any] = {}
        if "dag_run_id" in Workload.__dataclass_fields__:
            extra["dag_run_id"] = run.id
        workload = Workload(
            ti_id=row.id,
            dag_id=args.dag_id,
            run_id=args.run_id,
            task_id=args.task_id,
            map_index=args.map_index,
            # A task resuming from a deferral continues its try; anything else starts the next one.
            try_number=(row.try_number or 0) + (0 if row.next_method else 1),
            fileloc=fileloc,
            queue=row.queue or "default",
            priority=row.priority_weight or 1,
            **extra,
        )
        print(f"Running {workload.label} in this process.", flush=True)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)  # as in a worker's task process
        try:
            WorkloadRunner(home=str(current.home)).run(workload)
        finally:
            signal.signal(signal.SIGTERM, previous)
        with engine.connect() as conn:
            after = conn.execute(select(ti.c.state, ti.c.try_number).where(ti.c.id == row.id)).one()
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
    from sqlalchemy import select

    from zonda.cli._loading import open_metastore, plugin_manager, prepare_task_process
    from zonda.exceptions import ZondaException
    from zonda.metastore import tables as t
    from zonda.runner.log_handlers import TaskLogKey, load_task_log_handler

    current = settings()
    metastore = open_metastore(current)
    ti = t.task_instance
    try:
        with metastore.engine.connect() as conn:
            run = _find_run(conn, args.dag_id, args.run_id)
            instances = conn.execute(
                select(ti.c.task_id, ti.c.map_index, ti.c.state, ti.c.try_number).where(ti.c.dag_run_id == run.id)
            ).all()
    finally:
        metastore.dispose()
    label = f"{args.dag_id}.{args.task_id}" + (f"[{args.map_index}]" if args.map_index >= 0 else "")
    of_task = [r for r in instances if r.task_id == args.task_id]
    if not of_task:
        from zonda.suggestions import unknown_name

        task_ids = sorted({r.task_id for r in instances})
        raise ZondaException(
            unknown_name(
                f"run {args.run_id!r} of DAG {args.dag_id!r} has no task {args.task_id!r}",
                args.task_id,
                task_ids,
                f"its tasks: {', '.join(task_ids) or 'none yet'}",
            )
        )
    row = next((r for r in of_task if r.map_index == args.map_index), None)
    if row is None:
        indexes = ", ".join(str(r.map_index) for r in sorted(of_task, key=lambda r: r.map_index))
        raise ZondaException(
            f"run {args.run_id!r} has no instance {label}; its map indexes are {indexes}: pass --map-index"
        )
    tries = int(row.try_number or 0)
    if tries < 1:
        raise ZondaException(
            f"{label} has not started in run {args.run_id!r} (state {row.state or 'none'}): no log yet"
        )
    try_number = tries if args.try_number is None else args.try_number
    if not 1 <= try_number <= tries:
        raise ZondaException(
            f"{label} has had {tries} tr{'y' if tries == 1 else 'ies'} in run {args.run_id!r}; "
            f"--try must be 1 to {tries}"
        )
    plugins = plugin_manager(current)
    prepare_task_process(current, plugins)  # a remote handler looks its connection up like a task would
    handler = load_task_log_handler(current, plugins=plugins)
    task_log = handler.read(TaskLogKey(args.dag_id, args.task_id, args.run_id, args.map_index, try_number))
    print(f"*** {label} ({args.run_id}), try {try_number} of {tries}: from {task_log.source}", file=sys.stderr)
    for line in task_log.lines:
        print(line)
    return 0


def _states_for_dag_run(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from zonda.cli._loading import open_metastore
    from zonda.metastore import tables as t
    from zonda.scheduler.serialized import SerializedDag

    metastore = open_metastore(settings())
    ti = t.task_instance
    try:
        with metastore.engine.connect() as conn:
            run = _find_run(conn, args.dag_id, args.run_id)
            rows = conn.execute(select(ti).where(ti.c.dag_run_id == run.id)).all()
            data = conn.execute(
                select(t.serialized_dag.c.data).where(t.serialized_dag.c.dag_id == args.dag_id)
            ).scalar()
    finally:
        metastore.dispose()
    order: dict[str, int] = {}
    if data:
        order = {task_id: i for i, task_id in enumerate(SerializedDag.from_json(data).order)}
    rows = sorted(rows, key=lambda r: (order.get(r.task_id, len(order)), r.task_id, r.map_index))
    instances = [dict(r._mapping) for r in rows]
    if args.output == "table":
        for inst in instances:
            inst["state"] = inst["state"] or "none"
            if inst["duration"] is not None:
                inst["duration"] = f"{inst['duration']:.3f}"
    print_rows(instances, STATE_FIELDS, args.output)
    if not rows and args.output == "table":
        print(f"(run {args.run_id} has no task instances yet: a scheduler creates them when it starts the run)")
    return 0


def _related(sdag: Any, roots: set[str], attribute: str) -> set[str]:
    """Every task reachable from ``roots`` through ``upstream`` or ``downstream`` edges."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for other in getattr(sdag.tasks[todo.pop()], attribute):
            if other not in seen and other in sdag.tasks:
                seen.add(other)
                todo.append(other)
    return seen


def _clear(args: argparse.Namespace) -> int:
    import re

    from sqlalchemy import select, update

    from zonda.cli._loading import open_metastore, parse_date
    from zonda.exceptions import ZondaException
    from zonda.metastore import tables as t
    from zonda.scheduler.runs import load_serialized
    from zonda.scheduler.scheduler import IN_PROCESS_RUN_TYPE
    from zonda.timezone import utcnow

    start = parse_date(args.start_date)
    end = parse_date(args.end_date)
    metastore = open_metastore(settings())
    ti, dr = t.task_instance, t.dag_run
    try:
        engine = metastore.engine
        with engine.connect() as conn:
            sdag = load_serialized(conn, args.dag_id)
        task_ids = set(sdag.tasks)
        if args.task_regex:
            try:
                pattern = re.compile(args.task_regex)
            except re.error as exc:
                raise ZondaException(
                    f"--task-regex {args.task_regex!r} is not a valid regular expression: {exc}"
                ) from None
            task_ids = {task_id for task_id in sdag.tasks if pattern.search(task_id)}
            if not task_ids:
                from zonda.suggestions import unknown_name

                # A regex that matches nothing is most often a task id with a typo: compare its letters.
                typed = args.task_regex.strip("^$")
                raise ZondaException(
                    unknown_name(
                        f"no task of DAG {args.dag_id!r} matches {args.task_regex!r}",
                        typed,
                        sdag.tasks,
                        f"`zonda tasks list {args.dag_id}` lists them",
                    )
                )
        roots = set(task_ids)
        if args.downstream:
            task_ids |= _related(sdag, roots, "downstream")
        if args.upstream:
            task_ids |= _related(sdag, roots, "upstream")
        query = (
            select(ti.c.id, ti.c.dag_run_id, ti.c.run_id, ti.c.task_id, ti.c.map_index, ti.c.state, ti.c.try_number)
            .join(dr, dr.c.id == ti.c.dag_run_id)
            .where(ti.c.dag_id == args.dag_id, ti.c.task_id.in_(sorted(task_ids)))
        )
        if start is not None:
            query = query.where(dr.c.logical_date >= start)
        if end is not None:
            query = query.where(dr.c.logical_date <= end)
        if args.run_id:
            query = query.where(dr.c.run_id == args.run_id)
        if args.only_failed:
            query = query.where(ti.c.state.in_(("failed", "upstream_failed")))
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(dr.c.logical_date, ti.c.task_id, ti.c.map_index)).all()
        if not rows:
            print("No task instances match; nothing was cleared.")
            return 0
        run_ids = sorted({r.dag_run_id for r in rows})
        with engine.connect() as conn:
            runs = conn.execute(select(dr.c.id, dr.c.run_id, dr.c.run_type, dr.c.state).where(dr.c.id.in_(run_ids)))
            in_process = [r for r in runs if r.run_type == IN_PROCESS_RUN_TYPE]
            paused = conn.execute(select(t.dag.c.is_paused).where(t.dag.c.dag_id == args.dag_id)).scalar()
        _refuse_running_test_runs(args.dag_id, in_process)
        if not args.yes and not _confirm(rows):
            print("Cancelled; nothing was changed.", file=sys.stderr)
            return 1
        now = utcnow()
        with engine.begin() as conn:
            for row in rows:
                retries = sdag.tasks[row.task_id].retries if row.task_id in sdag.tasks else 0
                conn.execute(
                    update(ti)
                    .where(ti.c.id == row.id)
                    .values(
                        state=None,
                        # As Airflow: the tries already made stay counted, and the task gets its retries again.
                        max_tries=(row.try_number or 0) + retries,
                        ready_at=None,
                        pid=None,
                        queued_by_job_id=None,
                        job_id=None,
                        trigger_id=None,
                        trigger_timeout=None,
                        next_method=None,
                        next_kwargs=None,
                        updated_at=now,
                    )
                )
            _collapse_mapped(conn, sdag, rows, task_ids)
            conn.execute(
                update(dr)
                .where(dr.c.id.in_(run_ids))
                .values(state="queued", queued_at=now, start_date=None, end_date=None, last_scheduling_decision=None)
            )
            if in_process:
                # A run `dags test` made and ended is handed to the scheduler, which leaves "test" runs alone
                # (their own process runs them): as a manual run it is rerun like any other.
                conn.execute(
                    update(dr)
                    .where(dr.c.id.in_([r.id for r in in_process]))
                    .values(run_type="manual", external_trigger=True)
                )
        alive = _alive_schedulers(engine)
    finally:
        metastore.dispose()
    print(
        f"Cleared {len(rows)} task instance(s) in {len(run_ids)} run(s) of {args.dag_id}; those runs are queued again."
    )
    if in_process:
        names = ", ".join(r.run_id for r in in_process)
        print(f"Run(s) {names} came from `zonda dags test`; they are manual runs now, which the scheduler runs.")
    if paused:
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


def _refuse_running_test_runs(dag_id: str, in_process: list[Any]) -> None:
    """A run `zonda dags test` is still running belongs to that process: clearing it would run its tasks twice."""
    from zonda.exceptions import ZondaException

    running = [r for r in in_process if r.state == "running"]
    if running:
        raise ZondaException(
            f"run {running[0].run_id!r} of {dag_id} is being run by `zonda dags test` in another process, so "
            "nothing was cleared; wait for it to end (or, if that process was stopped, rerun the whole run with "
            f"`zonda dags test {dag_id} LOGICAL_DATE`), or leave it out with --run-id / --start-date"
        )


def _collapse_mapped(conn: Any, sdag: Any, rows: list[Any], cleared_tasks: set[str]) -> None:
    """A mapped task cleared together with an upstream task is expanded again from the new upstream result
    (its instances fold back into one unexpanded instance), as Airflow re-expands it."""
    from sqlalchemy import delete, select, update

    from zonda.metastore import tables as t

    ti = t.task_instance
    by_run_task: dict[tuple[int, str], list[Any]] = {}
    for row in rows:
        by_run_task.setdefault((row.dag_run_id, row.task_id), []).append(row)
    for (dag_run_id, task_id), cleared in by_run_task.items():
        task = sdag.tasks.get(task_id)
        if task is None or not task.is_mapped or not (task.upstream & cleared_tasks):
            continue
        total = conn.execute(select(ti.c.id).where(ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id)).all()
        if len(total) != len(cleared):
            continue  # only some instances were cleared: keep the expansion
        conn.execute(delete(ti).where(ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id, ti.c.map_index > 0))
        conn.execute(delete(t.xcom).where(t.xcom.c.dag_run_id == dag_run_id, t.xcom.c.task_id == task_id))
        conn.execute(
            update(ti)
            .where(ti.c.dag_run_id == dag_run_id, ti.c.task_id == task_id, ti.c.map_index == 0)
            .values(map_index=-1)
        )


def _confirm(rows: list[Any]) -> bool:
    shown = rows[:20]
    print_table(
        [[r.run_id, r.task_id, str(r.map_index), r.state or "none", str(r.try_number)] for r in shown],
        ["run_id", "task_id", "map_index", "state", "try_number"],
    )
    if len(rows) > len(shown):
        print(f"... and {len(rows) - len(shown)} more")
    try:
        answer = input(f"Clear these {len(rows)} task instance(s)? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in {"y", "yes"}
