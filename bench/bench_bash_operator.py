#!/usr/bin/env python3
"""What ``BashOperator`` adds on top of starting bash itself: ``bash -c true`` through the operator against
``subprocess.run(["bash", "-c", "true"])``, in this process.

usage: .venv/bin/python bench/bench_bash_operator.py [--runs 50]

Prints the mean time of each and the difference. Goal: well under a millisecond of overhead. Asserts nothing (it
replaced a timed test, which failed on a busy machine).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
from datetime import UTC, datetime
from typing import Any


class _TaskInstance:
    """What the operator reads from ``ti``: nothing is pushed for ``true`` (no output)."""

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def main() -> None:
    from zonda.operators import BashOperator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("zonda.task").setLevel(logging.WARNING)
    context = {
        "ds": "2024-01-01",
        "logical_date": datetime(2024, 1, 1, tzinfo=UTC),
        "run_id": "bench",
        "ti": _TaskInstance(),
        "params": {},
    }
    operator = BashOperator(task_id="t", bash_command="true", cwd="/")
    operator.execute(context)
    started = time.perf_counter()
    for _ in range(args.runs):
        operator.execute(context)
    ours = (time.perf_counter() - started) / args.runs
    started = time.perf_counter()
    for _ in range(args.runs):
        subprocess.run(["bash", "-c", "true"], capture_output=True, check=True)
    raw = (time.perf_counter() - started) / args.runs
    print(
        f"BashOperator('true'): {ours * 1000:.2f} ms   bash -c true: {raw * 1000:.2f} ms   "
        f"overhead: {(ours - raw) * 1000:+.2f} ms  ({args.runs} runs each)"
    )


if __name__ == "__main__":
    main()
