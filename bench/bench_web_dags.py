"""Server time of the DAGs page with 1,000 DAGs (each with 5 runs, some tagged), through the Flask test client
on a SQLite metastore: the issue's goal is <= 150 ms. Also a filtered page and the payload size.

    python3 bench/bench_web_dags.py [--dags 1000] [--repeat 15]

Prints figures only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ui"))  # dag_fixtures: DAGs and runs in bulk

from _venv import reexec_in_venv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="runs per DAG")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from web_bench_app import make_app, report, time_request, timed

    with tempfile.TemporaryDirectory(prefix="zonda-bench-dags-") as tmp:
        _app, store, client = make_app(Path(tmp))
        timed(f"storing {args.dags} DAGs with {args.runs} runs each", lambda: _fill(store, args.dags, args.runs))
        timings, response = time_request(client, "/dags", args.repeat)
        report(f"GET /dags ({args.dags} DAGs)", timings, 150, f"  {len(response.data) / 1024:.0f} KB")
        timings, response = time_request(client, "/dags?search=dag_00&tag=team_a", args.repeat)
        report("GET /dags?search=dag_00&tag=team_a", timings, 150, f"  {len(response.data) / 1024:.0f} KB")
        store.dispose()


def _fill(store, dags: int, runs: int) -> None:
    from dag_fixtures import add_runs, store_dag, wide_dag

    for index in range(dags):
        dag_id = f"dag_{index:04d}"
        dag = wide_dag(dag_id, 1, tags=[f"team_{'abc'[index % 3]}", "bench"], description=f"Benchmark DAG {index}")
        store_dag(store, dag)
        add_runs(store.engine, dag_id, runs)


if __name__ == "__main__":
    reexec_in_venv(__file__)
    main()
