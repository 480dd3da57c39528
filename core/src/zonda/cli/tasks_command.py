"""``zonda tasks list | test``."""

from __future__ import annotations

import argparse

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands


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
    test.add_argument("logical_date", nargs="?", help="Logical date (ISO), default now")
    test.add_argument("--map-index", type=int, default=-1, help="Run this instance of a mapped task")
    test.add_argument("--conf", "-c", help="JSON object of params")


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
    from zonda.runner.single_task import test_task

    current = settings()
    plugins = plugin_manager(current)
    dag = load_dag(current, args.dag_id, plugins)
    prepare_task_process(current, plugins)
    outcome = test_task(
        dag,
        args.task_id,
        parse_date(args.logical_date),
        settings=current,
        conf=parse_conf(args.conf),
        map_index=args.map_index,
        echo=True,
        plugins=plugins,
    )
    print(f"\nTask {outcome.ti.label}: {outcome.ti.state.value}")
    if outcome.ti.error:
        print(f"error: {outcome.ti.error}")
    if outcome.xcoms:
        print("XComs:")
        for key, value in outcome.xcoms.items():
            text = repr(value)
            print(f"  {key} = {text if len(text) < 500 else text[:500] + '...'}")
    else:
        print("XComs: (none)")
    return 0 if outcome.ti.state.value in ("success", "skipped") else 1
