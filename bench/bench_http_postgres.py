#!/usr/bin/env python3
"""Provider hot paths beside their bare client libraries: ``PostgresHook.iter_batches`` vs a psycopg
server-side cursor, and ``HttpHook.run`` vs a ``requests.Session``.

usage: python3 bench/bench_http_postgres.py [--only pg|http] [--rows 1000000] [--small-rows 100000]
       [--batch-size 10000] [--repeat 5] [--requests 3000] [--dsn postgresql://postgres@127.0.0.1:5432/test]
       [--profile]

Prints figures; never asserts on them (the exit code is non-zero only when something it runs fails).

PostgreSQL (the issue's targets: iter_batches >= 70% of the bare cursor's rows/s; peak memory flat in the row
count):

* an UNLOGGED table ``zonda_bench_narrow (id integer, tag text)`` with ``--rows`` rows is created in the
  ``--dsn`` database (and dropped at the end), VACUUM ANALYZEd so every pass reads the same warm pages;
* the same ``SELECT id, tag FROM zonda_bench_narrow`` is read by ``PostgresHook(...).iter_batches(sql,
  batch_size)``, by a bare psycopg named (server-side) cursor with ``fetchmany(batch_size)``, and by a bare
  named cursor iterated row by row (``itersize = batch_size``, psycopg's idiom), interleaved for ``--repeat``
  rounds (the order rotates each round); the consumer only counts rows. rows/s = rows / wall of the whole
  read (connect included), median; also rows per CPU-second of this (client) process, which moves less when
  other work shares the machine;
* memory: for ``--small-rows`` and ``--rows``, a fresh process reads the table through iter_batches (then the
  bare cursor) and reports the tracemalloc peak during the read, and its peak RSS (``ru_maxrss``) minus the
  RSS just before the read. Flat means the 10x larger read peaks at about the same.

HTTP (target: at most 0.3 ms added per request):

* a keep-alive HTTP/1.1 server (``http.server``, 2-byte body) runs in a *separate process* on loopback, so the
  client's timings do not share its GIL;
* per request, ``time.perf_counter_ns`` around ``session.get(url)`` on a bare ``requests.Session`` and around
  ``hook.run("ping")`` on one ``HttpHook("GET")`` (its connection from ``ZONDA_CONN_BENCH_HTTP``), in
  alternating blocks of 100 requests, ``--requests`` of each after a warm-up; medians, and the difference is
  the hook's overhead. Then ``--requests`` pairs (bare, hook) back to back: the median of the paired
  differences, a second estimate less sensitive to drift. A third line builds a new hook per request with a
  shared connection lookup, as a task process has (what one operator task pays once: the lookup, the session
  set-up and a new TCP connection).

``--profile`` prints the top of a cProfile of the hook's requests and of iter_batches.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _venv import BENCH_DIR, REPO, reexec_in_venv

reexec_in_venv(__file__)  # the bench needs psycopg, requests and the two providers

TABLE = "zonda_bench_narrow"
SQL = f"SELECT id, tag FROM {TABLE}"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _fmt_rate(value: float) -> str:
    return f"{value / 1e6:.2f} M rows/s" if value >= 1e6 else f"{value / 1e3:.0f} k rows/s"


def _isolated_home() -> None:
    """A throwaway ZONDA_HOME, so no user config or metastore is read; connections come from the environment."""
    home = tempfile.mkdtemp(prefix="zonda_bench_home_")
    os.environ["ZONDA_HOME"] = home
    for var in list(os.environ):
        if var.startswith("ZONDA__"):
            del os.environ[var]


# -- PostgreSQL ---------------------------------------------------------------------------------------------


def _prepare_table(dsn: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE UNLOGGED TABLE {TABLE} (id integer PRIMARY KEY, tag text NOT NULL)")
        conn.execute(f"INSERT INTO {TABLE} SELECT i, 'tag-' || (i %% 1000) FROM generate_series(1, %s) AS i", [rows])
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def _drop_table(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


def _hook_uri(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgres://", 1)


def read_hook(dsn: str, sql: str, batch_size: int) -> int:
    from zonda_postgres.hooks import PostgresHook

    count = 0
    for batch in PostgresHook("bench_pg").iter_batches(sql, batch_size=batch_size):
        count += len(batch)
    return count


def read_bare_fetchmany(dsn: str, sql: str, batch_size: int) -> int:
    import psycopg

    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench_bare") as cursor:
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch_size):
            count += len(rows)
    return count


def read_bare_iter(dsn: str, sql: str, batch_size: int) -> int:
    import psycopg

    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench_bare_iter") as cursor:
        cursor.itersize = batch_size
        cursor.execute(sql)
        for _row in cursor:
            count += 1
    return count


READERS = {"iter_batches": read_hook, "bare fetchmany": read_bare_fetchmany, "bare row iteration": read_bare_iter}


def _memory_child(dsn: str, reader: str, rows: int, batch_size: int) -> dict[str, float]:
    """Run in a fresh process: the peak memory of one read of ``rows`` rows (see the module docstring)."""
    code = f"""
import json, resource, sys, tracemalloc
sys.path.insert(0, {str(BENCH_DIR)!r})
import bench_http_postgres as b
import psycopg, zonda_postgres.hooks  # imports done before the baseline
def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
before = rss_kib()
tracemalloc.start()
n = b.READERS[{reader!r}]({dsn!r}, {SQL!r} + " WHERE id <= {rows}", {batch_size})
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({{"rows": n, "traced_peak_mib": peak / 2**20,
                  "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}}))
"""
    env = {**os.environ, "ZONDA_BENCH_REEXEC": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_postgres(args: argparse.Namespace) -> None:
    import psycopg

    dsn = args.dsn
    os.environ["ZONDA_CONN_BENCH_PG"] = _hook_uri(dsn)
    with psycopg.connect(dsn) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    print(f"\n== PostgresHook.iter_batches vs a bare psycopg server-side cursor (PostgreSQL {version}) ==")
    print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} libpq wrapper), batch_size={args.batch_size}")
    started = time.perf_counter()
    _prepare_table(dsn, args.rows)
    print(f"table {TABLE}: {args.rows:,} rows (id integer, tag text) in {time.perf_counter() - started:.1f}s")
    try:
        for reader in READERS.values():  # warm-up: the table's pages in shared buffers / the page cache
            reader(dsn, SQL, args.batch_size)
        walls: dict[str, list[float]] = {name: [] for name in READERS}
        cpus: dict[str, list[float]] = {name: [] for name in READERS}
        names = list(READERS)
        for round_number in range(args.repeat):
            # Rotate the order each round so no reader always runs first (or right after the slowest).
            for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
                c0, t0 = time.process_time(), time.perf_counter()
                count = READERS[name](dsn, SQL, args.batch_size)
                walls[name].append(time.perf_counter() - t0)
                cpus[name].append(time.process_time() - c0)
                if count != args.rows:
                    raise SystemExit(f"{name} read {count} rows, expected {args.rows}")
        rates = {name: args.rows / statistics.median(w) for name, w in walls.items()}
        cpu_rates = {name: args.rows / statistics.median(c) for name, c in cpus.items()}
        best = max(("bare fetchmany", "bare row iteration"), key=lambda n: rates[n])
        best_cpu = max(("bare fetchmany", "bare row iteration"), key=lambda n: cpu_rates[n])
        print(
            f"\n{'reader':<20} {'median wall':>11} {'min':>7} {'max':>7} {'rows/s (wall)':>14} {'vs bare':>8}"
            f" {'rows/CPU-s (client)':>20} {'vs bare':>8}"
        )
        for name, w in walls.items():
            print(
                f"{name:<20} {statistics.median(w):>10.3f}s {min(w):>6.3f}s {max(w):>6.3f}s "
                f"{_fmt_rate(rates[name]):>14} {rates[name] / rates[best]:>8.0%}"
                f" {_fmt_rate(cpu_rates[name]):>20} {cpu_rates[name] / cpu_rates[best_cpu]:>8.0%}"
            )
        ratio = rates["iter_batches"] / rates[best]
        cpu_ratio = cpu_rates["iter_batches"] / cpu_rates[best_cpu]
        print(
            f"iter_batches / best bare cursor: {ratio:.0%} by wall, {cpu_ratio:.0%} by the client's CPU time "
            f"(target >= 70%: {'met' if min(ratio, cpu_ratio) >= 0.7 else 'NOT met'})"
        )

        print(f"\nmemory of one read, fresh process each ({args.small_rows:,} vs {args.rows:,} rows)")
        print(f"{'reader':<22} {'rows':>10} {'tracemalloc peak':>17} {'RSS growth':>11}")
        for name in ("iter_batches", "bare fetchmany"):
            for rows in (args.small_rows, args.rows):
                m = _memory_child(dsn, name, rows, args.batch_size)
                print(f"{name:<22} {m['rows']:>10,} {m['traced_peak_mib']:>14.1f} MiB {m['rss_growth_mib']:>7.1f} MiB")
        if args.profile:
            _profile(lambda: read_hook(dsn, SQL, args.batch_size))
    finally:
        _drop_table(dsn)


# -- HTTP ---------------------------------------------------------------------------------------------------

SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""


def bench_http(args: argparse.Namespace) -> None:
    import requests

    from zonda_http.hooks import HttpHook

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        os.environ["ZONDA_CONN_BENCH_HTTP"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"}
        )
        url = f"http://127.0.0.1:{port}/ping"
        print(f"\n== HttpHook.run vs a bare requests.Session (requests {requests.__version__}, loopback :{port}) ==")
        session = requests.Session()
        hook = HttpHook("GET", http_conn_id="bench_http")
        for _ in range(200):  # warm-up: connections open, code paths hot
            session.get(url)
            hook.run("ping")

        def time_block(call, n: int, into: list[int]) -> None:
            for _ in range(n):
                t0 = time.perf_counter_ns()
                call()
                into.append(time.perf_counter_ns() - t0)

        bare: list[int] = []
        hooked: list[int] = []
        fresh: list[int] = []
        block = 100
        for _ in range(max(1, args.requests // block)):
            time_block(lambda: session.get(url), block, bare)
            time_block(lambda: hook.run("ping"), block, hooked)

        # Paired: bare and hook alternate request by request; the median of the differences is less
        # sensitive to the machine's drift than the difference of two medians.
        paired: list[int] = []
        for _ in range(args.requests):
            t0 = time.perf_counter_ns()
            session.get(url)
            t1 = time.perf_counter_ns()
            hook.run("ping")
            t2 = time.perf_counter_ns()
            paired.append((t2 - t1) - (t1 - t0))

        # A task process shares one connection lookup between its hooks (zonda.cli._loading sets
        # BaseHook.default_lookup); do the same, so this line is what one operator pays once per task.
        from zonda.config import load_settings
        from zonda.hooks.base import BaseHook
        from zonda.secrets import ConnectionLookup

        BaseHook.default_lookup = ConnectionLookup(load_settings(), plugins=False)

        def fresh_hook() -> None:
            h = HttpHook("GET", http_conn_id="bench_http")
            h.run("ping")
            h.close()

        time_block(fresh_hook, max(100, args.requests // 10), fresh)
        BaseHook.default_lookup = None
        rows = [
            ("bare requests.Session", bare),
            ("HttpHook.run (one hook)", hooked),
            ("new HttpHook per request", fresh),
        ]
        print(f"\n{'client':<26} {'n':>6} {'median':>10} {'p10':>10} {'p90':>10}")
        for name, values in rows:
            q = statistics.quantiles(values, n=10)
            print(
                f"{name:<26} {len(values):>6} {statistics.median(values) / 1e3:>7.0f} µs "
                f"{q[0] / 1e3:>7.0f} µs {q[-1] / 1e3:>7.0f} µs"
            )
        overhead = (statistics.median(hooked) - statistics.median(bare)) / 1e6
        paired_overhead = statistics.median(paired) / 1e6
        worst = max(overhead, paired_overhead)
        print(
            f"HttpHook.run overhead over the bare session: {overhead:+.3f} ms per request (difference of the "
            f"medians), {paired_overhead:+.3f} ms (median of {len(paired)} paired differences); "
            f"target <= 0.3 ms: {'met' if worst <= 0.3 else 'NOT met'}"
        )
        once = (statistics.median(fresh) - statistics.median(hooked)) / 1e6
        print(
            f"one-off cost of a new hook in a task process (connection lookup, session set-up, new TCP "
            f"connection): {once:.3f} ms"
        )
        if args.profile:
            _profile(lambda: [hook.run("ping") for _ in range(2000)])
        session.close()
        hook.close()
    finally:
        server.terminate()
        server.wait(5)


def _profile(fn) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("pg", "http"))
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    _isolated_home()
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    print(f"git HEAD {head.stdout.strip()}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if args.only in (None, "pg"):
        bench_postgres(args)
    if args.only in (None, "http"):
        bench_http(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
