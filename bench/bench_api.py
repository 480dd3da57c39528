"""The REST API on a big metastore: p50/p99 of the list endpoints with 8 concurrent clients, and triggered runs/s.

    python3 bench/bench_api.py [--scale 1.0] [--clients 8] [--requests 50] [--databases sqlite,postgres]

Loads ``1,000,000 x scale`` task instances over ``20,000 x scale`` runs (50 per run) of one DAG with bulk INSERTs,
then serves the app with the real WSGI server (waitress) on loopback and has ``--clients`` threads, each logged
in with its own session, request each list endpoint ``--requests`` times. The clients run in a process of their
own (``--clients-in-process``: as threads of the server's process, sharing its interpreter lock, as the first
figures were taken). PostgreSQL uses a database of its own (``zonda_bench_api_<pid>``, made and dropped).
Prints figures only (goals: p99 <= 20 ms, >= 200 runs/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import reexec_in_venv

TASKS_PER_RUN = 50
PASSWORD = "bench password 1234"
ENDPOINTS = {
    "dags": "/api/v1/dags",
    "dagRuns (first page)": "/api/v1/dags/bench/dagRuns?limit=100",
    "dagRuns state=failed, count=none": "/api/v1/dags/~/dagRuns?state=failed&limit=100&count=none",
    "taskInstances (first page, exact count)": "/api/v1/dags/bench/dagRuns/~/taskInstances?limit=100",
    "taskInstances count=none": "/api/v1/dags/~/dagRuns/~/taskInstances?limit=100&count=none",
    "taskInstances count=estimate": "/api/v1/dags/~/dagRuns/~/taskInstances?limit=100&count=estimate",
    "taskInstances of one run": "/api/v1/dags/bench/dagRuns/run_00042/taskInstances",
    "taskInstances -start_date, count=none": (
        "/api/v1/dags/bench/dagRuns/~/taskInstances?limit=100&order_by=-start_date&count=none"
    ),
}


def load(engine: Any, runs: int) -> float:
    """Bulk-insert the DAG, its serialized form, ``runs`` runs and their task instances; returns seconds."""
    from zonda import DAG
    from zonda.metastore import tables as t
    from zonda.operators import EmptyOperator
    from zonda.serialization import serialize_dag

    started = time.perf_counter()
    with DAG("bench", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        for n in range(TASKS_PER_RUN):
            EmptyOperator(task_id=f"t{n:02d}")
    data, digest = serialize_dag(dag)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id="bench", is_paused=True, is_active=True, fileloc="/bench.py"))
        conn.execute(t.serialized_dag.insert().values(dag_id="bench", data=data, dag_hash=digest, fileloc="/b.py"))
    batch = 200
    for first in range(0, runs, batch):
        numbers = range(first, min(first + batch, runs))
        with engine.begin() as conn:
            conn.execute(
                t.dag_run.insert(),
                [
                    {
                        "id": n + 1,
                        "dag_id": "bench",
                        "run_id": f"run_{n:05d}",
                        "run_type": "scheduled",
                        "state": "failed" if n % 10 == 0 else "success",
                        "logical_date": t0 + timedelta(hours=n),
                        "start_date": t0 + timedelta(hours=n),
                    }
                    for n in numbers
                ],
            )
            conn.execute(
                t.task_instance.insert(),
                [
                    {
                        "dag_run_id": n + 1,
                        "dag_id": "bench",
                        "run_id": f"run_{n:05d}",
                        "task_id": f"t{k:02d}",
                        "map_index": -1,
                        "state": "failed" if (n + k) % 97 == 0 else "success",
                        "try_number": 1,
                        "start_date": t0 + timedelta(hours=n, seconds=k),
                        "end_date": t0 + timedelta(hours=n, seconds=k + 5),
                        "duration": 5.0,
                        "operator": "EmptyOperator",
                    }
                    for n in numbers
                    for k in range(TASKS_PER_RUN)
                ],
            )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # the runs were inserted with their ids: move the sequence past them
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('dag_run', 'id'), (SELECT max(id) FROM dag_run))"
            )
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def login(url: str) -> Any:
    import httpx

    client = httpx.Client(base_url=url, timeout=60)
    token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
    client.headers["X-CSRF-Token"] = client.get("/dags").text.split('name="csrf_token" value="', 1)[1].split('"')[0]
    return client


def client_for(url: str, session: tuple[dict[str, str], str]) -> Any:
    """A client carrying a logged-in session (its cookies and CSRF token), in whichever process calls this."""
    import httpx

    cookies, csrf = session
    return httpx.Client(base_url=url, timeout=60, cookies=cookies, headers={"X-CSRF-Token": csrf})


def session_of(client: Any) -> tuple[dict[str, str], str]:
    return dict(client.cookies), client.headers["X-CSRF-Token"]


def run_clients(url: str, sessions: list[tuple[dict[str, str], str]], job: str, *args: Any) -> Any:
    """``hammer`` or ``triggers`` with a client per session; run in the clients' own process, so the server's
    interpreter spends its time on serving, not on the clients' HTTP parsing."""
    clients = [client_for(url, session) for session in sessions]
    try:
        return run_clients_here(clients, job, *args)
    finally:
        for client in clients:
            client.close()


def hammer(clients: list[Any], path: str, requests: int) -> list[float]:
    """Each client requests ``path`` ``requests`` times at once with the others; the latencies in ms."""
    times: list[float] = []
    lock = threading.Lock()

    def run(client: Any) -> None:
        mine = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            mine.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def triggers(clients: list[Any], seconds: float) -> float:
    """Runs triggered per second by all clients at once for ``seconds``."""
    made = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def run(client: Any) -> None:
        while time.perf_counter() < deadline:
            response = client.post("/api/v1/dags/bench/dagRuns", json={"conf": {}})
            if response.status_code != 200:
                raise SystemExit(f"trigger: {response.status_code} {response.text[:200]}")
            with lock:
                made[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made[0] / (time.perf_counter() - started)


#: A database of this run's own (two benchmarks at once must not drop each other's), dropped at the end.
PG_DATABASE = f"zonda_bench_api_{os.getpid()}"


def _pg_admin(statement: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(statement)
    admin.dispose()


def _p99(times: list[float]) -> float:
    return times[min(len(times) - 1, int(len(times) * 0.99))]


def run_clients_here(clients: list[Any], job: str, *args: Any) -> Any:
    return {"hammer": hammer, "triggers": triggers}[job](clients, *args)


def _client_runner(in_process: bool) -> Any:
    """None (clients run as threads of this process), or a one-process pool for them."""
    import contextlib
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if in_process:
        return contextlib.nullcontext(None)
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def postgres_url() -> str:
    _pg_admin(f"DROP DATABASE IF EXISTS {PG_DATABASE}")
    _pg_admin(f"CREATE DATABASE {PG_DATABASE}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"


def bench(database: str, home: str, args: argparse.Namespace) -> None:
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore
    from zonda.operations.users import create_user
    from zonda.web import create_app
    from zonda.web.server import WebServer

    url = f"sqlite:///{home}/bench.db" if database == "sqlite" else postgres_url()
    store = Metastore(url)
    store.init()
    runs = max(1, int(20_000 * args.scale))
    seconds = load(store.engine, runs)
    print(f"\n{database}: loaded {runs:,} runs and {runs * TASKS_PER_RUN:,} task instances in {seconds:.1f} s")
    create_user(store.engine, "bench", "User", PASSWORD, actor="(bench)")
    settings = load_settings(Path(home)).with_overrides({("database", "sql_alchemy_conn"): store.url})
    app = create_app(settings, engine=store.engine)
    server = WebServer(app, "127.0.0.1", 0, threads=args.clients + 4)
    stop = threading.Event()
    serving = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    serving.start()
    clients = [login(server.url) for _ in range(args.clients)]
    sessions = [session_of(client) for client in clients]
    with _client_runner(args.clients_in_process) as runner:

        def measure(job: str, count: int, *rest: Any) -> Any:
            if runner is None:
                return run_clients_here(clients[:count], job, *rest)
            return runner.submit(run_clients, server.url, sessions[:count], job, *rest).result()

        where = "in the server's process" if runner is None else "in a process of their own"
        print(f"  ({args.clients} clients {where})")
        print(f"  {'endpoint':45} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>8}")
        for name, path in ENDPOINTS.items():
            measure("hammer", 1, path, 2)  # warm caches
            times = sorted(measure("hammer", args.clients, path, args.requests))
            size = len(clients[0].get(path).content)
            print(f"  {name:45} {statistics.median(times):8.1f} {_p99(times):8.1f} {size:8}")
        deep = clients[0].get("/api/v1/dags/~/dagRuns/~/taskInstances?limit=1000&count=none&offset=0").json()
        cursor_path = f"/api/v1/dags/~/dagRuns/~/taskInstances?limit=100&count=none&cursor={deep['next_cursor']}"
        times = sorted(measure("hammer", args.clients, cursor_path, args.requests))
        print(f"  {'taskInstances, a page after a cursor':45} {statistics.median(times):8.1f} {_p99(times):8.1f}")
        print(f"  trigger: {measure('triggers', 1, 5):.0f} runs/s from 1 client, ", end="")
        print(f"{measure('triggers', args.clients, 5):.0f} runs/s from {args.clients} clients")
    for client in clients:
        client.close()
    stop.set()
    serving.join(10)
    store.dispose()
    if database == "postgres":
        _pg_admin(f"DROP DATABASE IF EXISTS {PG_DATABASE}")


def main() -> int:
    reexec_in_venv(__file__)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="requests per client per endpoint")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--clients-in-process",
        action="store_true",
        help="run the clients as threads of the server's process (as the first figures were taken)",
    )
    args = parser.parse_args()
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory() as home:
            os.environ["ZONDA_HOME"] = home
            os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
            os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
            bench(database.strip(), home, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
