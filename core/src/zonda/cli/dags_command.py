"""``zonda dags list | list-import-errors | show | test``."""

from __future__ import annotations

import argparse
import sys

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands


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


def _list(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_bag

    bag = load_bag(settings())
    rows = [
        {
            "dag_id": dag.dag_id,
            "fileloc": dag.fileloc,
            "schedule": dag.timetable.summary,
            "tags": dag.tags,
            "tasks": len(dag.task_dict),
            "description": dag.description,
        }
        for dag in sorted(bag, key=lambda d: d.dag_id)
    ]
    print_rows(rows, ["dag_id", "fileloc", "schedule", "tags", "tasks", "description"], args.output)
    if bag.import_errors and args.output == "table":
        print(
            f"\n{len(bag.import_errors)} file(s) failed to import; see `zonda dags list-import-errors`",
            file=sys.stderr,
        )
    _record_errors(bag)
    return 0


def _list_import_errors(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_bag

    bag = load_bag(settings())
    _record_errors(bag)
    rows = [{"filename": f, "error": e} for f, e in sorted(bag.import_errors.items())]
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

    current = load_settings()
    url = current.sql_alchemy_conn
    if url.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(url[len("sqlite:///") :]).exists():
            return
    try:
        from zonda.dagbag import record_import_errors
        from zonda.metastore.db import Metastore

        metastore = Metastore.from_settings(current)
        if metastore.current_revision() is None:
            return  # not initialised yet (e.g. only `zonda db check` ran): nothing to keep current
        metastore.ensure_ready(auto_init=False)
        record_import_errors(metastore, bag)
    except Exception as exc:  # the listing itself must still work without a usable metastore
        print(f"warning: import errors not recorded in the metastore: {exc}", file=sys.stderr)


def _show(args: argparse.Namespace) -> int:
    from zonda.cli._loading import load_dag

    dag = load_dag(settings(), args.dag_id)
    order = dag.topological_order()
    if args.output == "json":
        from zonda.serialization import serialize_dag

        print(serialize_dag(dag)[0])
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
