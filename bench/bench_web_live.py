"""Live updates: the metastore queries per second of 20 open tabs, and the latency from a state write to the event
arriving in every tab (goal: at most 1 query per second in total, however many tabs).

    python3 bench/bench_web_live.py [--tabs 20] [--seconds 10] [--history 2000] [--url DATABASE_URL]

The app runs under the real WSGI server on loopback, on a metastore holding ``--history`` runs of 25 task
instances (the poll must stay an index range scan); a second engine plays the scheduler and writes one task
state every half second. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import reexec_in_venv

TASKS = 25


def seed(engine: Any, history: int) -> None:
    from zonda.metastore import tables as t

    with engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id="bench", is_paused=False, is_active=True, fileloc="/bench.py"))
        for start in range(0, history + 1, 500):
            numbers = range(start, min(start + 500, history + 1))
            names = ["live" if n == history else f"old{n}" for n in numbers]
            conn.execute(
                t.dag_run.insert(),
                [{"dag_id": "bench", "run_id": r, "run_type": "manual", "state": "success"} for r in names],
            )
            ids = dict(
                conn.execute(
                    t.dag_run.select()
                    .with_only_columns(t.dag_run.c.run_id, t.dag_run.c.id)
                    .where(t.dag_run.c.run_id.in_(names))
                ).all()
            )
            conn.execute(
                t.task_instance.insert(),
                [
                    {"dag_run_id": ids[r], "dag_id": "bench", "run_id": r, "task_id": f"t{i}", "state": "success"}
                    for r in names
                    for i in range(TASKS)
                ],
            )


def read_stream(base: str, cookies: Any, arrivals: dict[int, list[float]], opened: threading.Event) -> None:
    import httpx

    with (
        httpx.Client(base_url=base, cookies=cookies, timeout=httpx.Timeout(10, read=60)) as client,
        client.stream("GET", "/events?dag_id=bench&run_id=live&kind=ti") as response,
    ):
        for line in response.iter_lines():
            if line == ": connected":
                opened.set()
            elif line.startswith("data: "):
                change = json.loads(line[6:])
                arrivals.setdefault(change.get("try_number", -1), []).append(time.perf_counter())


def main() -> int:
    reexec_in_venv(__file__)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--history", type=int, default=2000, help="old runs of 25 task instances each")
    parser.add_argument("--url", help="metastore URL (default: a SQLite file in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZONDA_HOME"] = home
        os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
        os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
        import httpx
        from sqlalchemy import event, update

        from zonda.config import load_settings
        from zonda.metastore import tables as t
        from zonda.metastore.db import Metastore
        from zonda.operations.changes import changes_since
        from zonda.operations.users import create_user
        from zonda.timezone import utcnow
        from zonda.web import create_app
        from zonda.web.server import WebServer

        store = Metastore(args.url or f"sqlite:///{home}/bench.db")
        store.init()
        seed(store.engine, args.history)
        create_user(store.engine, "bench", "Viewer", "bench password 1234", actor="(bench)")
        settings = load_settings(Path(home)).with_overrides({("database", "sql_alchemy_conn"): store.url})
        app = create_app(settings, engine=store.engine)
        started = time.perf_counter()
        for _ in range(20):
            changes_since(store.engine, utcnow(), limit=5000)
        poll_ms = (time.perf_counter() - started) / 20 * 1000
        server = WebServer(app, "127.0.0.1", 0, threads=args.tabs + 8)
        stop = threading.Event()
        serving = threading.Thread(target=server.serve, args=(stop,), daemon=True)
        serving.start()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            form = {"username": "bench", "password": "bench password 1234", "csrf_token": token}
            client.post("/login", data=form)
            cookies = client.cookies
        arrivals: dict[int, list[float]] = {}
        readers = []
        for _ in range(args.tabs):
            opened = threading.Event()
            reader = threading.Thread(target=read_stream, args=(server.url, cookies, arrivals, opened), daemon=True)
            reader.start()
            opened.wait(30)
            readers.append(reader)
        writer = Metastore(store.url)
        statements = [0]

        def count(*_: Any) -> None:
            statements[0] += 1

        event.listen(store.engine, "before_cursor_execute", count)
        written: dict[int, float] = {}
        begun = time.perf_counter()
        number = 0
        while time.perf_counter() - begun < args.seconds:
            number += 1
            ti = t.task_instance
            with writer.engine.begin() as conn:
                conn.execute(
                    update(ti)
                    .where(ti.c.dag_id == "bench", ti.c.run_id == "live", ti.c.task_id == f"t{number % TASKS}")
                    .values(state="running", try_number=number)
                )
            written[number] = time.perf_counter()
            time.sleep(0.5)
        time.sleep(2)  # the last writes' events
        elapsed = time.perf_counter() - begun
        event.remove(store.engine, "before_cursor_execute", count)
        latencies = [
            (arrived - written[n]) * 1000 for n, times in arrivals.items() if n in written for arrived in times
        ]
        complete = sum(1 for n in written if len(arrivals.get(n, ())) == args.tabs)
        stop.set()
        serving.join(15)
        writer.dispose()
        store.dispose()
    print(f"metastore: {'the given URL' if args.url else 'SQLite'}, {args.history} old runs x {TASKS} task instances")
    print(f"one poll query: {poll_ms:.2f} ms")
    print(f"{args.tabs} tabs for {elapsed:.1f} s: {statements[0]} queries = {statements[0] / elapsed:.2f} queries/s")
    print(f"writes: {len(written)}, seen by all {args.tabs} tabs: {complete}")
    if latencies:
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        print(
            f"write -> event latency over {len(latencies)} deliveries: median {statistics.median(latencies):.0f} ms, "
            f"p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
