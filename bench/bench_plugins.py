"""What a listener plugin costs per task: the same 1->200->1 DAG run in process, without plugins, with a
no-op listener plugin, and with the example events plugin (a JSON line per event), best of N runs each.

    python3 bench/bench_plugins.py [--repeat 5]

Prints figures only; the issue's goal is at most 1 ms added per task.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_dag():
    from zonda import DAG
    from zonda.operators import PythonOperator

    def noop() -> None:
        return None

    with DAG("bench_listener_fanout", start_date=datetime(2024, 1, 1)) as dag:
        start = PythonOperator(task_id="start", python_callable=noop)
        end = PythonOperator(task_id="end", python_callable=noop)
        start >> [PythonOperator(task_id=f"t{i}", python_callable=noop) for i in range(200)] >> end
    return dag


class NoopListener:
    """Implements every task listener and does nothing: the pure cost of dispatch."""

    def __init__(self) -> None:
        from zonda import hookimpl

        for name in ("on_task_instance_running", "on_task_instance_success"):
            setattr(self, name, hookimpl(specname=name)(lambda task_instance: None))


def run_once(plugins) -> float:
    from zonda.testing import run_dag

    dag = build_dag()
    started = time.perf_counter()
    result = run_dag(dag, "2024-01-01", plugins=plugins)
    elapsed = time.perf_counter() - started
    assert result.succeeded
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="zonda-bench-plugins-"))
    os.environ["ZONDA_HOME"] = str(home)
    os.environ["ZONDA_EVENTS_FILE"] = str(home / "events.jsonl")
    sys.path.insert(0, str(REPO / "plugins" / "zonda-plugin-events" / "src"))
    from zonda.plugins.manager import PluginManager

    def manager(kind: str):
        if kind == "none":
            return None
        pm = PluginManager(plugins_folder=None, autoload=False)
        if kind == "noop":
            pm.register(NoopListener(), "noop")
        else:
            import zonda_events.plugin as events

            pm.register(events, "events")
        return pm

    tasks = 202
    results = {}
    for kind in ("none", "noop", "events"):
        run_once(manager(kind))  # warm-up
        results[kind] = min(run_once(manager(kind)) for _ in range(args.repeat))
    print(f"in-process run of a 1->200->1 DAG (in-memory state), best of {args.repeat}")
    print(f"{'plugins':<28}{'run':>10}{'per task':>12}{'added per task':>18}")
    for kind, label in (("none", "none"), ("noop", "no-op listener"), ("events", "events plugin (JSONL)")):
        added = (results[kind] - results["none"]) / tasks * 1000
        print(f"{label:<28}{results[kind]:>9.3f}s{results[kind] / tasks * 1000:>10.3f}ms{added:>16.3f}ms")
    print("goal: a listener plugin adds at most 1 ms per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
