#!/usr/bin/env python3
"""The Elasticsearch provider beside bare client code: ``SqlToElasticsearchOperator`` vs a psycopg server-side
cursor feeding ``elasticsearch.helpers.streaming_bulk``, and ``ElasticsearchSearchOperator`` writing JSON lines
vs a bare point-in-time + ``search_after`` loop.

usage: python3 bench/bench_elasticsearch.py [--quick] [--only transfer|memory|search] [--rows 1000000]
       [--small-rows 100000] [--search-hits 100000] [--repeat 1] [--search-repeat 3] [--batch-size 5000]
       [--page-size 1000] [--refresh-interval -1] [--progress-every 20]
       [--dsn postgresql://postgres@127.0.0.1:5432/test] [--profile]

Prints figures; never asserts on them (the exit code is non-zero only when something it runs fails, e.g. a
transfer that does not index every row).

How long: noida-db gets slower as an index grows (about 7,000 documents/s into an empty index, about 500/s
once it holds 1,000,000; it keeps its data as one JSON file that it rewrites as it changes), so the default run
(1,000,000 rows per side, 100,000 hits) takes about 40-45 minutes, 16-19 of them per 1M-row transfer;
``--rows 300000`` takes about 10 minutes and ``--quick`` (100,000 / 20,000 rows, 20,000 hits) about 2.

Set-up: a database ``zonda_bench_es`` created on the ``--dsn`` server, holding an UNLOGGED table ``bench_docs``
of ``--rows`` rows ``(id bigint, name text, category text, price numeric(10,2), quantity integer, created
timestamptz, active boolean)``. Every run gets its *own* ``noida-db`` (an Elasticsearch-compatible server, the
provider's ``local`` extra), started through ``zonda_elasticsearch.local_server.LocalElasticsearch`` on a free
loopback port with an empty data folder, and an index created with one explicit strict mapping and
``refresh_interval: -1`` (``--refresh-interval``; a refresh per second makes noida-db slow down much faster as
the index grows, and bulk loads into real Elasticsearch are run that way too). So no run overwrites documents
(noida-db overwrites much more slowly than it inserts) or inherits the server state of another. Both clients
get a 120 s request timeout (the client's default is 10 s, and a timed-out bulk request is sent again).
Everything is removed at the end (servers stopped, folders and the database dropped).

1. Transfer (target: the operator >= 70% of the bare pipeline's rows/s). Each run is a *child process*, which
   reports its own timings: the wall time around the transfer only (interpreter start and imports excluded, the
   PostgreSQL connect, the client's creation and every request included), its CPU time, and its peak RSS.
   * zonda: a DAG with one ``SqlToElasticsearchOperator(sql_conn_id="bench_pg", elasticsearch_conn_id="bench_es",
     id_field="id", batch_size=--batch-size)``, run with ``zonda.testing.run_task`` (the task runner, its log
     capture and its XCom, as ``zonda tasks test`` runs a task), connections from ``ZONDA_CONN_BENCH_PG`` /
     ``ZONDA_CONN_BENCH_ES``, in a throwaway ``ZONDA_HOME``. Its XCom report must say every row was indexed.
   * bare: ``psycopg`` named cursor (``itersize = --batch-size``) iterated row by row, one ``{"_index", "_id",
     "_source": dict(zip(columns, row))}`` action per row, ``streaming_bulk(client, actions,
     chunk_size=--batch-size)`` on a plain ``Elasticsearch(url)`` with its default serializer.
   Both must leave exactly --rows documents (counted after a refresh). ``--repeat`` rounds, one run per side
   each, the order alternating (bare then zonda, then zonda then bare, ...); rows/s = rows / that wall, median
   over the rounds. Also per run: the server's CPU seconds (``/proc/<pid>/stat``), the client's CPU per row
   (where the two sides can differ: the server's share is the same work), and "other work", the CPU that the
   rest of the machine used meanwhile (``/proc/stat`` busy time minus the server's and the client's), in cores.
2. Memory (target: the same at --small-rows and --rows, under 250 MB): the peak RSS (``VmHWM``: the whole
   process, C allocations included, which tracemalloc misses) of a child running the transfer, at --small-rows
   (two runs per side, order zonda, bare, bare, zonda; their rows/s are printed too) and at --rows (the runs of
   part 1). "growth" = VmHWM - VmRSS just before the transfer (after the imports).
3. Search (target: the operator >= 80% of the bare loop's hits/s): ``--search-hits`` documents are indexed once
   (outside the timings) and refreshed, and both sides page through 5 pages as a warm-up. Then, in this
   process, alternating for ``--search-repeat`` rounds:
   * zonda: ``ElasticsearchSearchOperator(index, size=--page-size, output=<file>.jsonl)`` run with ``run_task``;
   * bare: ``open_point_in_time``, ``search(size=--page-size, sort=["_shard_doc"], pit=..., search_after=...)``
     until a short page, ``close_point_in_time``, each hit written as ``json.dumps(hit)`` on its own line.
   hits/s = hits / wall (file closed included), median; both files must hold --search-hits lines.

While a transfer runs, the parent polls the index's ``indexing.index_total`` (``_stats``; unlike ``_count`` it
needs no refresh) every ``--progress-every`` seconds and prints the progress (the same small load on both
sides). Other work shares this machine's 2 cores, so only figures from the same run compare: every run prints
the 1-minute load average (at its start, and the mean of samples every 5 s) and the other work's CPU.
``--profile`` runs one more zonda transfer (--small-rows) and one search (--search-hits) in this process under
cProfile and prints their top 25 by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _venv import REPO, reexec_in_venv

reexec_in_venv(__file__)  # the bench needs psycopg, elasticsearch and the providers

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DB = "zonda_bench_es"
TABLE = "bench_docs"
COLUMNS = "id, name, category, price, quantity, created, active"
MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "long"},
        "name": {"type": "keyword"},
        "category": {"type": "keyword"},
        "price": {"type": "double"},
        "quantity": {"type": "integer"},
        "created": {"type": "date"},
        "active": {"type": "boolean"},
    },
}
SEARCH_INDEX = "bench_search"
#: Both sides' client timeout per request, instead of the client's 10 s: a 5,000-document ``_bulk`` can take longer
#: on a busy machine, and a timed-out bulk is sent again (both clients retry on timeout), which re-indexes it.
REQUEST_TIMEOUT = 120
#: A child transfer may take at most this long per row (plus a minute) before it is stopped: 4 ms/row is 4x
#: noida-db's average over 1,000,000 rows on a busy machine (about 1 ms/row; it slows down as the index grows).
CHILD_SECONDS_PER_ROW = 0.004


def _sql(rows: int) -> str:
    return f"SELECT {COLUMNS} FROM {TABLE} WHERE id <= {int(rows)}"


def _loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _rate(value: float, unit: str) -> str:
    return f"{value / 1e3:.2f} k {unit}/s"


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (its threads included) from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds every process on this machine has used since boot (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _others(busy: float, *own: float, wall: float) -> str:
    """The CPU that other work (not the server, not the measured client) used during a run, in cores."""
    return f"{max(0.0, busy - sum(own)) / wall:.2f} cores"


def _isolated_home() -> str:
    """A throwaway ZONDA_HOME, so no user config or metastore is read; connections come from the environment."""
    home = tempfile.mkdtemp(prefix="zonda_bench_es_home_")
    os.environ["ZONDA_HOME"] = home
    os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
    os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
    for var in list(os.environ):
        if var.startswith("ZONDA__") and var not in (
            "ZONDA__CORE__LOAD_EXAMPLES",
            "ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION",
        ):
            del os.environ[var]
    return home


# -- the child processes (one transfer each) ------------------------------------------------------------------


def _transfer_zonda(rows: int, index: str, batch_size: int) -> int:
    from datetime import UTC, datetime

    from zonda import DAG
    from zonda.testing import run_task
    from zonda_elasticsearch.transfers import SqlToElasticsearchOperator

    start = datetime(2024, 1, 1, tzinfo=UTC)
    with DAG("bench_pg_to_es", start_date=start, schedule=None) as dag:
        SqlToElasticsearchOperator(
            task_id="copy",
            sql_conn_id="bench_pg",
            sql=_sql(rows),
            index=index,
            elasticsearch_conn_id="bench_es",
            id_field="id",
            batch_size=batch_size,
        )
    outcome = run_task(dag, "copy", start)
    if outcome.ti.state != "success":
        raise SystemExit(f"the transfer task ended {outcome.ti.state}: {outcome.ti.error}\n{outcome.log_text[-3000:]}")
    report = outcome.xcoms["return_value"]
    if report["rows_read"] != rows or report["rows_indexed"] != rows:
        raise SystemExit(f"the transfer moved {report['rows_indexed']} of {report['rows_read']} rows, expected {rows}")
    return int(report["rows_indexed"])


def _transfer_bare(rows: int, index: str, batch_size: int, pg_dsn: str, es_url: str) -> int:
    import psycopg
    from elasticsearch import Elasticsearch, helpers

    client = Elasticsearch(es_url, request_timeout=REQUEST_TIMEOUT)
    indexed = 0
    with psycopg.connect(pg_dsn) as conn, conn.cursor(name="bench_bare") as cursor:
        cursor.itersize = batch_size
        cursor.execute(_sql(rows))  # type: ignore[arg-type]  # a literal query of this module
        names = [column.name for column in cursor.description or ()]

        def actions() -> Iterator[dict[str, Any]]:
            for row in cursor:
                doc = dict(zip(names, row, strict=True))
                yield {"_index": index, "_id": doc["id"], "_source": doc}

        for ok, _item in helpers.streaming_bulk(client, actions(), chunk_size=batch_size, raise_on_error=True):
            indexed += ok
    client.close()
    if indexed != rows:
        raise SystemExit(f"the bare pipeline indexed {indexed} rows, expected {rows}")
    return indexed


def child_main(args: argparse.Namespace) -> int:
    """``--child zonda|bare``: one transfer; prints one JSON line with its timings and memory."""
    # Imports first, so the "before" RSS and the timings leave them out for both sides alike.
    import psycopg  # noqa: F401
    from elasticsearch import Elasticsearch, helpers  # noqa: F401

    import zonda.testing  # noqa: F401
    import zonda_elasticsearch.hooks
    import zonda_elasticsearch.transfers  # noqa: F401
    import zonda_postgres.hooks  # noqa: F401

    rss_before = _proc_status_kib("VmRSS")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.child == "zonda":
        moved = _transfer_zonda(args.rows, args.index, args.batch_size)
    else:
        moved = _transfer_bare(args.rows, args.index, args.batch_size, args.pg_dsn, args.es_url)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    result = {
        "rows": moved,
        "wall": wall,
        "cpu": cpu,
        "rss_before_mib": rss_before / 1024,
        "peak_rss_mib": _proc_status_kib("VmHWM") / 1024,
    }
    print(json.dumps(result), flush=True)
    return 0


# -- the parent ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """One running noida-db: its URL, process id and an admin client."""

    url: str
    pid: int
    client: Any


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, pg_dsn: str) -> None:
        self.args = args
        self.work = work
        self.pg_dsn = pg_dsn
        self.runs = 0

    @contextlib.contextmanager
    def server(self) -> Iterator[Server]:
        """A fresh noida-db with an empty data folder, for one run: no run inherits another's server state (its
        heap grows to GBs over a 1M-document load and is not given back when an index is deleted). Sets
        ``ZONDA_CONN_BENCH_ES`` to it; stopped and its folder removed afterwards."""
        from elasticsearch import Elasticsearch

        from zonda_elasticsearch.local_server import LocalElasticsearch

        self.runs += 1
        data = self.work / f"noida-{self.runs}"
        local = LocalElasticsearch(data)
        try:
            local.start()
            assert local.process is not None
            os.environ["ZONDA_CONN_BENCH_ES"] = json.dumps(
                {
                    "conn_type": "elasticsearch",
                    "host": "127.0.0.1",
                    "port": local.port,
                    "schema": "http",
                    "extra": {"request_timeout": REQUEST_TIMEOUT},
                }
            )
            client = Elasticsearch(local.url, request_timeout=REQUEST_TIMEOUT)
            try:
                yield Server(local.url, local.process.pid, client)
            finally:
                client.close()
        finally:
            local.stop()
            shutil.rmtree(data, ignore_errors=True)

    def create_index(self, es: Server, name: str) -> None:
        interval = self.args.refresh_interval
        settings = {"refresh_interval": interval} if interval != "default" else None
        es.client.indices.create(index=name, mappings=MAPPING, settings=settings)

    def transfer(self, side: str, rows: int) -> dict[str, Any]:
        """One transfer of ``rows`` rows in a child process, into a fresh index on a fresh server; its figures."""
        with self.server() as es:
            return self._transfer(es, side, rows)

    def _transfer(self, es: Server, side: str, rows: int) -> dict[str, Any]:
        index = f"bench_{side}"
        self.create_index(es, index)
        load = _loadavg()
        cmd = [
            sys.executable,
            __file__,
            "--child",
            side,
            "--rows",
            str(rows),
            "--index",
            index,
            "--batch-size",
            str(self.args.batch_size),
            "--pg-dsn",
            self.pg_dsn,
            "--es-url",
            es.url,
        ]
        env = {**os.environ, "ZONDA_BENCH_REEXEC": "1"}
        server_cpu0 = _cpu_seconds(es.pid)
        busy0 = _machine_busy_seconds()
        started = time.monotonic()
        timeout = 60 + rows * CHILD_SECONDS_PER_ROW
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            child = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
            try:
                loads = self._wait_with_progress(es, child, side, index, rows, started, timeout)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait(10)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        server_cpu = _cpu_seconds(es.pid) - server_cpu0
        busy = _machine_busy_seconds() - busy0
        if child.returncode != 0:
            raise SystemExit(
                f"the {side} transfer of {rows:,} rows failed (exit {child.returncode}):\n{stderr[-4000:]}"
            )
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        es.client.indices.refresh(index=index)
        count = int(es.client.count(index=index)["count"])
        if count != rows:
            raise SystemExit(f"the {side} transfer left {count:,} documents in {index}, expected {rows:,}")
        wall = result["wall"]
        others = _others(busy, server_cpu, result["cpu"], wall=wall)
        result.update(side=side, server_cpu=server_cpu, load=load, others=others)
        mean_load = f"{statistics.mean(loads):.1f}" if loads else "-"
        print(
            f"  {side:<5} {rows:>9,} rows  {wall:7.1f} s  {_rate(rows / wall, 'rows'):>15}  "
            f"client CPU {result['cpu']:6.1f} s ({result['cpu'] / rows * 1e6:5.1f} µs/row)  server CPU "
            f"{server_cpu:6.1f} s  peak RSS {result['peak_rss_mib']:5.1f} MiB  load at start {load}, mean "
            f"{mean_load}; other work {others}",
            flush=True,
        )
        return result

    def _wait_with_progress(
        self, es: Server, child: subprocess.Popen[str], side: str, index: str, rows: int, started: float, timeout: float
    ) -> list[float]:
        """Wait for ``child``, printing progress; returns the 1-minute load averages sampled every 5 s."""
        every = self.args.progress_every
        next_report = started + every
        loads: list[float] = []
        next_sample = started
        while child.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                loads.append(os.getloadavg()[0])
                next_sample = now + 5
            if now - started > timeout:
                raise SystemExit(f"the {side} transfer of {rows:,} rows took more than {timeout:.0f} s; stopped")
            if every > 0 and now >= next_report:
                next_report = now + every
                with contextlib.suppress(Exception):
                    # Indexing operations so far: unlike _count, it needs no refresh.
                    stats = es.client.indices.stats(index=index, metric="indexing")
                    done = int(stats["_all"]["primaries"]["indexing"]["index_total"])
                    elapsed = now - started
                    print(
                        f"    ... {side}: {done:,} of {rows:,} documents indexed after {elapsed:.0f} s "
                        f"(~{done / elapsed:,.0f}/s), load {_loadavg()}",
                        flush=True,
                    )
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(0.5)
        return loads


def _prepare_database(admin_dsn: str, rows: int) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    dsn = make_conninfo(admin_dsn, dbname=DB)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE UNLOGGED TABLE {TABLE} (id bigint PRIMARY KEY, name text NOT NULL, category text NOT NULL, "
            "price numeric(10, 2) NOT NULL, quantity integer NOT NULL, created timestamptz NOT NULL, "
            "active boolean NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {TABLE} SELECT i, 'item-' || i, 'category-' || (i %% 50), (i %% 10000) / 4.0, i %% 97, "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i %% 3 = 0 "
            "FROM generate_series(1, %s) AS i",
            [rows],
        )
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    params = conninfo_to_dict(dsn)
    user = params.get("user") or "postgres"
    auth = f"{user}:{params['password']}@" if params.get("password") else f"{user}@"
    os.environ["ZONDA_CONN_BENCH_PG"] = (
        f"postgres://{auth}{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{DB}"
    )
    return dsn


def _drop_database(admin_dsn: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def _median_rate(results: list[dict[str, Any]], count_key: str) -> float:
    return statistics.median(r[count_key] / r["wall"] for r in results)


def bench_transfer(bench: Bench, rows: int, repeat: int) -> dict[str, list[dict[str, Any]]]:
    print(
        f"\n== 1. SqlToElasticsearchOperator vs psycopg named cursor + streaming_bulk: {rows:,} rows, "
        f"batch/chunk {bench.args.batch_size:,}, {repeat} round(s) ==",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {"zonda": [], "bare": []}
    for number in range(repeat):
        order = ("bare", "zonda") if number % 2 == 0 else ("zonda", "bare")
        print(f" round {number + 1}/{repeat}: {' then '.join(order)}", flush=True)
        for side in order:
            results[side].append(bench.transfer(side, rows))
    zonda, bare = _median_rate(results["zonda"], "rows"), _median_rate(results["bare"], "rows")
    ratio = zonda / bare
    cpu_z = statistics.median(r["cpu"] / r["rows"] for r in results["zonda"]) * 1e6
    cpu_b = statistics.median(r["cpu"] / r["rows"] for r in results["bare"]) * 1e6
    print(
        f"median rows/s: zonda {_rate(zonda, 'rows')}, bare {_rate(bare, 'rows')}; zonda / bare = {ratio:.0%} "
        f"(target >= 70%: {'met' if ratio >= 0.7 else 'NOT met'}); client CPU per row: zonda {cpu_z:.1f} µs, "
        f"bare {cpu_b:.1f} µs",
        flush=True,
    )
    return results


def bench_memory(bench: Bench, small_rows: int, large: dict[str, list[dict[str, Any]]], rows: int) -> None:
    print(
        f"\n== 2. peak RSS of one transfer, child process per run: {small_rows:,} rows (2 runs per side, order "
        f"zonda, bare, bare, zonda) vs {rows:,} rows ==",
        flush=True,
    )
    small: dict[str, list[dict[str, Any]]] = {"zonda": [], "bare": []}
    for side in ("zonda", "bare", "bare", "zonda"):
        small[side].append(bench.transfer(side, small_rows))
    if not large.get("zonda"):  # --only memory: the large size once per side
        large = {side: [bench.transfer(side, rows)] for side in ("bare", "zonda")}
    print(f"{'side':<6} {'rows':>10} {'peak RSS (VmHWM)':>17} {'RSS before':>11} {'growth':>9}")
    for side in ("zonda", "bare"):
        for runs in (small[side], large[side]):
            entry = max(runs, key=lambda r: r["peak_rss_mib"])
            peak, before = entry["peak_rss_mib"], entry["rss_before_mib"]
            print(f"{side:<6} {entry['rows']:>10,} {peak:>13.1f} MiB {before:>7.1f} MiB {peak - before:>5.1f} MiB")
    peak_small = max(r["peak_rss_mib"] for r in small["zonda"])
    peak_large = max(r["peak_rss_mib"] for r in large["zonda"])
    flat = peak_large <= peak_small * 1.1 + 5
    print(
        f"zonda: {peak_small:.1f} MiB at {small_rows:,} rows, {peak_large:.1f} MiB at {rows:,} rows "
        f"(target: the same, and under 250 MB = {250e6 / 2**20:.0f} MiB: "
        f"{'met' if flat and peak_large * 2**20 < 250e6 else 'NOT met'})",
        flush=True,
    )
    zonda, bare = _median_rate(small["zonda"], "rows"), _median_rate(small["bare"], "rows")
    print(
        f"(by the way) {small_rows:,} rows, median of 2: zonda {_rate(zonda, 'rows')}, bare {_rate(bare, 'rows')}: "
        f"{zonda / bare:.0%}",
        flush=True,
    )


def _search_bare(client: Any, index: str, page_size: int, path: Path, max_hits: int | None = None) -> int:
    count = 0
    pit = client.open_point_in_time(index=index, keep_alive="2m")["id"]
    try:
        search_after: list[Any] | None = None
        with path.open("w", encoding="utf-8") as out:
            while True:
                body: dict[str, Any] = {
                    "size": page_size,
                    "sort": ["_shard_doc"],
                    "pit": {"id": pit, "keep_alive": "2m"},
                }
                if search_after is not None:
                    body["search_after"] = search_after
                response = client.search(body=body)
                pit = response.get("pit_id") or pit
                hits = response["hits"]["hits"]
                for hit in hits:
                    out.write(json.dumps(hit) + "\n")
                count += len(hits)
                if len(hits) < page_size or (max_hits is not None and count >= max_hits):
                    break
                search_after = hits[-1]["sort"]
    finally:
        client.close_point_in_time(id=pit)
    return count


def _search_zonda(index: str, page_size: int, path: Path, max_hits: int | None = None) -> int:
    from datetime import UTC, datetime

    from zonda import DAG
    from zonda.testing import run_task
    from zonda_elasticsearch.operators import ElasticsearchSearchOperator

    start = datetime(2024, 1, 1, tzinfo=UTC)
    with DAG("bench_es_search", start_date=start, schedule=None) as dag:
        ElasticsearchSearchOperator(
            task_id="search",
            index=index,
            size=page_size,
            max_hits=max_hits,
            output=str(path),
            elasticsearch_conn_id="bench_es",
        )
    outcome = run_task(dag, "search", start)
    if outcome.ti.state != "success":
        raise SystemExit(f"the search task ended {outcome.ti.state}: {outcome.ti.error}\n{outcome.log_text[-3000:]}")
    return int(outcome.xcoms["return_value"]["count"])


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def _index_search_docs(es: Server, bench: Bench, hits: int) -> None:
    from elasticsearch import helpers

    bench.create_index(es, SEARCH_INDEX)
    docs = (
        {
            "_index": SEARCH_INDEX,
            "_id": i,
            "_source": {
                "id": i,
                "name": f"item-{i}",
                "category": f"category-{i % 50}",
                "price": (i % 10000) / 4.0,
                "quantity": i % 97,
                "created": f"2024-01-{1 + i % 28:02d}T00:00:00+00:00",
                "active": i % 3 == 0,
            },
        }
        for i in range(1, hits + 1)
    )
    helpers.bulk(es.client, docs, chunk_size=5000)
    es.client.indices.refresh(index=SEARCH_INDEX)


def bench_search(bench: Bench, hits: int, repeat: int, page_size: int, out_dir: Path) -> None:
    print(
        f"\n== 3. ElasticsearchSearchOperator to a JSON-lines file vs a bare PIT + search_after loop: {hits:,} hits, "
        f"{page_size:,} per page, {repeat} round(s) ==",
        flush=True,
    )
    with bench.server() as es:
        started = time.perf_counter()
        _index_search_docs(es, bench, hits)
        print(f"indexed {hits:,} documents into {SEARCH_INDEX} in {time.perf_counter() - started:.1f} s", flush=True)
        runners: dict[str, Callable[[Path, int | None], int]] = {
            "zonda": lambda path, most: _search_zonda(SEARCH_INDEX, page_size, path, most),
            "bare": lambda path, most: _search_bare(es.client, SEARCH_INDEX, page_size, path, most),
        }
        for side, run in runners.items():  # warm-up (5 pages): code paths, connections, the server's caches
            run(out_dir / f"warm_{side}.jsonl", 5 * page_size)
        walls: dict[str, list[float]] = {"zonda": [], "bare": []}
        for number in range(repeat):
            order = ("bare", "zonda") if number % 2 == 0 else ("zonda", "bare")
            for side in order:
                path = out_dir / f"{side}_{number}.jsonl"
                load = _loadavg()
                server0, busy0 = _cpu_seconds(es.pid), _machine_busy_seconds()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                count = runners[side](path, None)
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                server = _cpu_seconds(es.pid) - server0
                others = _others(_machine_busy_seconds() - busy0, server, cpu, wall=wall)
                lines = _lines(path)
                size = path.stat().st_size
                path.unlink()
                if count != hits or lines != hits:
                    raise SystemExit(f"{side} search wrote {lines:,} lines (count {count:,}), expected {hits:,}")
                walls[side].append(wall)
                print(
                    f"  {side:<5} {hits:>9,} hits  {wall:6.2f} s  {_rate(hits / wall, 'hits'):>15}  "
                    f"client CPU {cpu:5.2f} s  server CPU {server:5.2f} s  file {size / 2**20:5.1f} MiB  "
                    f"load {load}; other work {others}",
                    flush=True,
                )
    zonda = hits / statistics.median(walls["zonda"])
    bare = hits / statistics.median(walls["bare"])
    ratio = zonda / bare
    print(
        f"median hits/s: zonda {_rate(zonda, 'hits')}, bare {_rate(bare, 'hits')}; zonda / bare = {ratio:.0%} "
        f"(target >= 80%: {'met' if ratio >= 0.8 else 'NOT met'})",
        flush=True,
    )


def _profile(bench: Bench, out_dir: Path) -> None:
    import cProfile
    import pstats

    rows = bench.args.small_rows
    with bench.server() as es:
        bench.create_index(es, "bench_profile")
        print(f"\n== profile: the zonda transfer of {rows:,} rows in this process, top 25 by own time ==", flush=True)
        profiler = cProfile.Profile()
        profiler.enable()
        _transfer_zonda(rows, "bench_profile", bench.args.batch_size)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        hits = bench.args.search_hits
        _index_search_docs(es, bench, hits)
        print(f"\n== profile: the zonda search of {hits:,} hits, top 25 by own time ==", flush=True)
        profiler = cProfile.Profile()
        profiler.enable()
        _search_zonda(SEARCH_INDEX, bench.args.page_size, out_dir / "profile.jsonl")
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: 100k/20k rows, 20k hits, 1 round")
    parser.add_argument("--only", choices=("transfer", "memory", "search"), action="append")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL database to connect to for CREATE DATABASE")
    parser.add_argument("--rows", type=int, help="rows per transfer (default 1,000,000; --quick 100,000)")
    parser.add_argument("--small-rows", type=int, help="the smaller memory run (default 100,000; --quick 20,000)")
    parser.add_argument("--search-hits", type=int, help="hits per search (default 100,000; --quick 20,000)")
    parser.add_argument(
        "--repeat", type=int, help="transfer rounds, one run per side each, the order alternating (default 1)"
    )
    parser.add_argument("--search-repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per batch and per _bulk request")
    parser.add_argument("--page-size", type=int, default=1000, help="hits per search request")
    parser.add_argument(
        "--refresh-interval",
        default="-1",
        help="the indices' refresh_interval during a load (default -1: refresh once at the end; 'default': 1 s)",
    )
    parser.add_argument("--progress-every", type=float, default=20.0, help="seconds between progress lines")
    parser.add_argument("--profile", action="store_true")
    # The child processes (internal).
    parser.add_argument("--child", choices=("zonda", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--pg-dsn", help=argparse.SUPPRESS)
    parser.add_argument("--es-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    quick = args.quick
    args.rows = args.rows or (100_000 if quick else 1_000_000)
    args.small_rows = args.small_rows or (20_000 if quick else 100_000)
    args.search_hits = args.search_hits or (20_000 if quick else 100_000)
    args.repeat = args.repeat or 1
    parts = set(args.only or ("transfer", "memory", "search"))

    import elasticsearch
    import psycopg

    home = _isolated_home()
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    print(
        f"git HEAD {head.stdout.strip()}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"elasticsearch-py {elasticsearch.__versionstr__}, psycopg {psycopg.__version__}, load {_loadavg()}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="zonda_bench_es_"))
    began = time.perf_counter()
    try:
        table_rows = max(args.rows, args.small_rows) if parts & {"transfer", "memory"} or args.profile else 0
        t0 = time.perf_counter()
        pg_dsn = _prepare_database(args.dsn, table_rows)
        with psycopg.connect(pg_dsn) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()
        bench = Bench(args, work, pg_dsn)
        with bench.server() as es:
            version = es.client.info()["version"]["number"]
        print(
            f"noida-db {version} (Elasticsearch-compatible, a fresh server on a free port for every run), PostgreSQL "
            f"{pg_version[0] if pg_version else '?'}; database {DB}: {table_rows:,} rows in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        large: dict[str, list[dict[str, Any]]] = {}
        if "transfer" in parts:
            large = bench_transfer(bench, args.rows, args.repeat)
        if "memory" in parts:
            bench_memory(bench, args.small_rows, large, args.rows)
        if "search" in parts:
            bench_search(bench, args.search_hits, args.search_repeat, args.page_size, work)
        if args.profile:
            _profile(bench, work)
    finally:
        with contextlib.suppress(Exception):
            _drop_database(args.dsn)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    print(f"\ndone in {time.perf_counter() - began:.0f} s, load {_loadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
