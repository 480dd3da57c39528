"""The grid of one DAG of 1,000 tasks (in task groups of 50, every 100th mapped over 3) by 25 runs: the size of
``/dags/<id>/grid.json`` (goal: <= 100 KB) and its server time through the Flask test client on SQLite; then a
page deep in a DAG with 8,000 runs (keyset paging: page 300 should cost what page 1 does).

    python3 bench/bench_web_grid.py [--tasks 1000] [--runs 25] [--repeat 9]

Prints figures only. How soon the grid is interactive in Chromium is measured by the browser tests' benchmark
when Playwright is available (not here).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ui"))  # dag_fixtures: DAGs and runs in bulk

from _venv import reexec_in_venv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--deep-runs", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    from dag_fixtures import add_runs, store_dag, wide_dag
    from web_bench_app import make_app, report, store_grid_dag, time_request, timed

    with tempfile.TemporaryDirectory(prefix="zonda-bench-grid-") as tmp:
        _app, store, client = make_app(Path(tmp))
        timed(
            f"{args.tasks} tasks x {args.runs} runs",
            lambda: store_grid_dag(store, "bench_grid", args.tasks, args.runs),
        )
        timings, response = time_request(client, "/dags/bench_grid/grid.json", args.repeat)
        size = len(response.data)
        extra = f"  payload {size / 1024:.1f} KB (gzip {len(gzip.compress(response.data)) / 1024:.1f} KB)"
        extra += f" goal <= 100 KB: {'met' if size <= 100 * 1024 else 'NOT met'}"
        report(f"GET grid.json ({args.tasks} tasks x {args.runs} runs)", timings, None, extra)
        timings, response = time_request(client, "/dags/bench_grid", args.repeat)
        report("GET /dags/<id> (the grid page, data comes after)", timings, None, f"  {len(response.data)} B")

        store_dag(store, wide_dag("bench_deep", 10))
        deep_tasks = [f"task_{i:04d}" for i in range(10)]
        timed(
            f"{args.deep_runs} runs x 10 tasks",
            lambda: add_runs(store.engine, "bench_deep", args.deep_runs, task_ids=deep_tasks),
        )
        timings, response = time_request(client, "/dags/bench_deep/grid.json", args.repeat)
        report(f"GET grid.json, newest page of {args.deep_runs} runs", timings)
        oldest_page_cursor = _cursor_near_the_end(client, args.deep_runs)
        timings, _ = time_request(client, f"/dags/bench_deep/grid.json?before={oldest_page_cursor}", args.repeat)
        report(f"GET grid.json, page ~{args.deep_runs // 25} (keyset)", timings)
        store.dispose()


def _cursor_near_the_end(client, runs: int) -> int:
    """The cursor of a page near the oldest runs (run ids are dense from 1 in this fresh metastore: the
    benchmark DAG's runs come after the grid DAG's 25)."""
    body = client.get("/dags/bench_deep/grid.json").json
    newest = body["next_before"] + 25
    return newest - runs + 50


if __name__ == "__main__":
    reexec_in_venv(__file__)
    main()
