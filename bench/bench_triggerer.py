#!/usr/bin/env python3
"""1,000 deferred task instances on one triggerer: peak memory and how late each one is woken.

usage: .venv/bin/python bench/bench_triggerer.py [--count 1000] [--spread 5] [--lead 3] [--url URL]

Inserts a DAG run and ``--count`` task instances in state ``deferred``, each on its own ``DateTimeTrigger``
(rows written directly, no scheduler or worker), with moments spread evenly over ``--spread`` seconds starting
``--lead`` seconds from now (``--spread 0``: all at the same instant). Then runs one :class:`Triggerer` in this
process until every instance is back to ``scheduled`` and prints:

* peak RSS of this process (``resource.getrusage``, ``ru_maxrss``), before and after the triggerer ran;
* lateness of each trigger's event (the loop's fire time minus its moment);
* lateness of each task instance's wake-up: when the transaction that set it back to ``scheduled`` (with the
  event in ``next_kwargs``) had committed, minus the moment: from then on a scheduler can queue it.

Goal (issue 4, section 6): at most 200 MB resident, each woken within 100 ms. Prints figures, asserts nothing.
The default metastore is SQLite in a temp ``ZONDA_HOME``; ``--url`` points at another (an empty database).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

MB = 1_000_000 / 1024  # KiB in one MB: ru_maxrss is in KiB on Linux


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"min {ordered[0] * 1000:7.1f}  p50 {pick(0.5) * 1000:7.1f}  p90 {pick(0.9) * 1000:7.1f}  "
        f"p99 {pick(0.99) * 1000:7.1f}  max {ordered[-1] * 1000:7.1f}  mean {statistics.fmean(ordered) * 1000:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which the moments are spread")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds from now to the first moment")
    parser.add_argument("--url", default=None, help="metastore URL (default: SQLite in a temp ZONDA_HOME)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="zonda_bench_triggerer_"))
    (home / "dags").mkdir()
    os.environ["ZONDA_HOME"] = str(home)
    os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
    os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
    if args.url:
        os.environ["ZONDA__DATABASE__SQL_ALCHEMY_CONN"] = args.url

    from sqlalchemy import insert, select

    from zonda import serde
    from zonda.config import load_settings
    from zonda.metastore import tables as t
    from zonda.metastore.db import Metastore
    from zonda.triggerer import Triggerer
    from zonda.triggers import DateTimeTrigger, serialize_trigger

    settings = load_settings(home)
    metastore = Metastore.from_settings(settings)
    metastore.init()
    engine = metastore.engine

    count = args.count
    start = datetime.now(UTC) + timedelta(seconds=args.lead)
    step = args.spread / max(count - 1, 1)
    moments = [start + timedelta(seconds=i * step) for i in range(count)]
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(t.dag_run).values(
                dag_id="bench_deferred",
                run_id="bench__1",
                run_type="manual",
                state="running",
                conf="{}",
                start_date=datetime.now(UTC),
            )
        ).inserted_primary_key[0]
        trigger_rows = []
        for moment in moments:
            classpath, kwargs = serialize_trigger(DateTimeTrigger(moment))
            trigger_rows.append({"classpath": classpath, "kwargs": kwargs, "created_date": datetime.now(UTC)})
        conn.execute(insert(t.trigger), trigger_rows)
        trigger_ids = [r[0] for r in conn.execute(select(t.trigger.c.id).order_by(t.trigger.c.id))]
        conn.execute(
            insert(t.task_instance),
            [
                {
                    "dag_run_id": run_id,
                    "dag_id": "bench_deferred",
                    "run_id": "bench__1",
                    "task_id": f"sensor_{i:04d}",
                    "map_index": -1,
                    "state": "deferred",
                    "try_number": 1,
                    "max_tries": 0,
                    "pool": "default_pool",
                    "pool_slots": 1,
                    "trigger_id": trigger_ids[i],
                    "next_method": "execute_complete",
                    "next_kwargs": "{}",
                }
                for i in range(count)
            ],
        )
    rss_before = _rss_mb()

    fired: dict[int, datetime] = {}
    written: dict[int, datetime] = {}
    done = threading.Event()

    def on_outcome(outcome) -> None:  # called once the outcome's rows are committed
        written[outcome.trigger_id] = datetime.now(UTC)
        fired[outcome.trigger_id] = outcome.at
        if len(fired) >= count:
            done.set()

    triggerer = Triggerer(settings, metastore=metastore, capacity=max(count, 1000))
    triggerer.on_outcome = on_outcome
    stop = threading.Event()
    thread = threading.Thread(target=triggerer.run, args=(stop,), name="triggerer")
    began = time.monotonic()
    thread.start()
    finished = done.wait(args.lead + args.spread + 60)
    elapsed = time.monotonic() - began
    rss_running = _rss_mb()
    stop.set()
    thread.join(10)

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.task_instance.c.task_id,
                t.task_instance.c.state,
                t.task_instance.c.next_kwargs,
            ).where(t.task_instance.c.dag_run_id == run_id)
        ).all()
        left = conn.execute(select(t.trigger.c.id)).all()
    woken = [r for r in rows if r.state == "scheduled"]
    by_trigger = dict(zip(trigger_ids, moments, strict=True))
    fire_late = [(at - by_trigger[tid]).total_seconds() for tid, at in fired.items()]
    wake_late = [(written[tid] - by_trigger[tid]).total_seconds() for tid in written]
    # The event's payload is the moment itself: check that it made the JSON round trip into next_kwargs.
    round_trips = sum(1 for r in woken if serde.loads(r.next_kwargs)["event"] == moments[int(r.task_id[7:])])
    metastore.dispose()

    print(f"python {sys.version.split()[0]}, {engine.dialect.name} metastore, {count} DateTimeTrigger-deferred tasks")
    print(f"moments spread over {args.spread:g} s, first {args.lead:g} s after start; ran {elapsed:.2f} s")
    print(
        f"completed: {finished}; woken {len(woken)}/{count} (event payload in next_kwargs: {round_trips}); "
        f"trigger rows left {len(left)}"
    )
    print(
        f"peak RSS: {rss_before:.1f} MB before the triggerer, {rss_running:.1f} MB with {count} triggers (goal <= 200)"
    )
    if fire_late:
        print(f"event lateness (fired - moment):    {_percentiles(fire_late)}")
    if wake_late:
        within = sum(1 for v in wake_late if v <= 0.1)
        print(f"wake lateness (committed - moment): {_percentiles(wake_late)}")
        print(f"woken within 100 ms: {within}/{len(wake_late)} (goal: all)")
    return 0 if finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
