#!/usr/bin/env python3
"""Where a scheduled task's cost goes: CPU per task instance of the scheduler, its workers and PostgreSQL.

usage: python3 bench/bench_scheduler_cpu.py [--tree PATH] [--chains 3] [--noops 1] [--label NAME]

Wall times on a shared machine say more about the neighbours than about the code; CPU time and counted work do
not. Like ``bench_scheduler.py``, this starts the real scheduler (LocalExecutor, parallelism 32) on a fresh
PostgreSQL database and runs the 50-task chain and the 1,000 no-op tasks (one warm-up run each, not counted).
Around the counted runs it reads:

* CPU (user + system) of the scheduler process, and of its executor workers and task processes (every other
  process of its session, exited children included through their parents' ``cutime``), from ``/proc``;
* CPU of the PostgreSQL backends serving the bench database (``pg_stat_activity`` pids, ``/proc``);
* SQL statements by first keyword and commits, per process kind (``sched_cpu_probe.py`` counts them);
* rows inserted and updated per table (``pg_stat_user_tables``);

each divided by the task instances run. ``--tree`` measures another checkout (its own ``.venv``) with this
script, so two versions are compared by the same yardstick; interleave them (A, B, A, B) on a busy machine.
Prints figures (and ``--json``), asserts nothing; the database is dropped and every process stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


def _tree_arg() -> Path:
    for i, arg in enumerate(sys.argv):
        if arg == "--tree" and i + 1 < len(sys.argv):
            return Path(sys.argv[i + 1]).resolve()
        if arg.startswith("--tree="):
            return Path(arg.split("=", 1)[1]).resolve()
    return BENCH_DIR.parent


TREE = _tree_arg()
TREE_PY = TREE / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != (TREE / ".venv").resolve() and os.environ.get("ZONDA_BENCH_REEXEC") != "1":
    os.environ["ZONDA_BENCH_REEXEC"] = "1"  # the tree's venv: its zonda, SQLAlchemy and psycopg
    os.execv(str(TREE_PY), [str(TREE_PY), __file__, *sys.argv[1:]])

from sqlalchemy import create_engine, text  # noqa: E402

sys.path.insert(0, str(BENCH_DIR))
from sched_cpu_probe import FIELDS, SLOT_BYTES, SLOTS  # noqa: E402

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"
CHAIN, NOOP = "bench_chain50", "bench_noop1000"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd on (the name may hold spaces)


def session_cpu(leader: int) -> tuple[float, float]:
    """(scheduler's own CPU seconds, CPU seconds of every other process of its session and of reaped children)."""
    own = others = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None or int(fields[3]) != leader:  # field 6: session id
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        if int(entry) == leader:
            own, others = own + utime + stime, others + cutime + cstime
        else:
            others += utime + stime + cutime + cstime
    return own / TICK, others / TICK


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = f"zonda_bench_cpu_{os.getpid()}"
        self.home = Path(tempfile.mkdtemp(prefix="zonda_bench_cpu_", dir=Path(args.home_parent).expanduser()))
        self.counts = self.home / "statement_counts.bin"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA_", "AIRFLOW_"))}
        self.env.update(
            ZONDA_HOME=str(self.home),
            ZONDA__DATABASE__SQL_ALCHEMY_CONN=f"postgresql://postgres@127.0.0.1:5432/{self.db}",
            ZONDA__CORE__EXECUTOR="LocalExecutor",
            ZONDA__CORE__PARALLELISM="32",
            ZONDA__CORE__MAX_ACTIVE_TASKS_PER_DAG="256",
            ZONDA__CORE__LOAD_EXAMPLES="false",
            ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",  # the benchmark triggers its DAGs
            ZONDA_BENCH_COUNTS=str(self.counts),
        )
        self.proc: subprocess.Popen | None = None
        self.engine: Any = None

    def admin(self, sql: str) -> None:
        engine = create_engine(f"{PG_BASE}/postgres")
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def setup(self) -> None:
        self.admin(f'CREATE DATABASE "{self.db}"')
        dags = self.home / "dags"
        dags.mkdir()
        shutil.copy(BENCH_DIR / "dags" / f"{CHAIN}.py", dags)
        # The no-op DAG's text is bench_scheduler.py's NOOP_DAG (importing that module would start its bench).
        source = (BENCH_DIR / "bench_scheduler.py").read_text()
        (dags / f"{NOOP}.py").write_text(source[source.index("NOOP_DAG = '''") :].split("'''", 2)[1])
        code = (
            "from zonda.config import load_settings\nfrom zonda.metastore.db import Metastore\n"
            "from zonda.dag_processing import DagProcessor\n"
            "s = load_settings(); m = Metastore.from_settings(s); m.init()\n"
            "p = DagProcessor(s, m); r = p.run_once(); p.close()\n"
            "if r.errors: raise SystemExit(f'import errors: {r.errors}')\n"
        )
        subprocess.run([str(TREE_PY), "-c", code], env=self.env, cwd=TREE, check=True, timeout=300)
        self.counts.write_bytes(b"\0" * (SLOTS * SLOT_BYTES))
        self.engine = create_engine(f"{PG_BASE}/{self.db}", pool_size=2)

    def start(self) -> None:
        probe = BENCH_DIR / "sched_cpu_probe.py"
        self.log_file = open(self.home / "scheduler.log", "w")  # noqa: SIM115  (closed in teardown)
        self.proc = subprocess.Popen(
            [str(TREE_PY), str(probe)],
            env=self.env,
            cwd=TREE,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the scheduler exited with {self.proc.returncode} at start")
            with self.engine.connect() as conn:
                beat = conn.execute(
                    text("select latest_heartbeat > start_date from job where job_type='scheduler' and state='running'")
                ).scalar()
            if beat:
                return
            time.sleep(0.05)
        raise RuntimeError("the scheduler did not heartbeat within 120 s")

    def teardown(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.log_file.close()
        if self.engine is not None:
            self.engine.dispose()
        self.admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        shutil.rmtree(self.home, ignore_errors=True)

    # --- one measured phase --------------------------------------------------------------------------------

    def run(self, dag_id: str, run_id: str, timeout: float = 600) -> None:
        from zonda.scheduler.runs import trigger_dag

        trigger_dag(self.engine, dag_id, run_id=run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                state = conn.execute(
                    text("select state from dag_run where dag_id=:d and run_id=:r"), {"d": dag_id, "r": run_id}
                ).scalar()
            if state in ("success", "failed"):
                if state != "success":
                    log(f"{dag_id} {run_id} ended {state}")
                return
            time.sleep(0.02)
        raise RuntimeError(f"{dag_id} {run_id} did not end within {timeout:g} s")

    def statement_counts(self) -> tuple[list[int], list[int]]:
        """Counts by field for the scheduler process and for all the others."""
        data = self.counts.read_bytes()
        scheduler, others = [0] * len(FIELDS), [0] * len(FIELDS)
        for slot in range(SLOTS):
            values = struct.unpack_from(f"{len(FIELDS)}q", data, slot * SLOT_BYTES)
            if values[0]:
                target = scheduler if values[0] == self.proc.pid else others  # type: ignore[union-attr]
                for i in range(1, len(FIELDS)):
                    target[i] += values[i]
        return scheduler, others

    def backend_cpu(self) -> float:
        with self.engine.connect() as conn:
            pids = conn.execute(
                text("select pid from pg_stat_activity where datname = :d and pid <> pg_backend_pid()"), {"d": self.db}
            ).scalars()
            ticks = 0
            for pid in pids:
                fields = _stat_fields(pid)
                if fields is not None:
                    ticks += int(fields[11]) + int(fields[12])
        return ticks / TICK

    def table_writes(self) -> dict[str, tuple[int, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("select relname, n_tup_ins, n_tup_upd from pg_stat_user_tables")).all()
        return {name: (ins, upd) for name, ins, upd in rows}

    def snapshot(self) -> dict[str, Any]:
        time.sleep(1.5)  # backends report their table counters at most once a second
        own, others = session_cpu(self.proc.pid)  # type: ignore[union-attr]
        return {"cpu": (own, others, self.backend_cpu()), "sql": self.statement_counts(), "rows": self.table_writes()}

    def phase(self, name: str, dag_id: str, runs: int) -> dict[str, Any]:
        before = self.snapshot()
        walls: list[float] = []
        for i in range(runs):
            run_id = f"{name}_{i}"
            self.run(dag_id, run_id)
            with self.engine.connect() as conn:
                walls.append(
                    conn.execute(
                        text("select extract(epoch from end_date - queued_at) from dag_run where run_id = :r"),
                        {"r": run_id},
                    ).scalar_one()
                )
        after = self.snapshot()
        with self.engine.connect() as conn:
            tis = conn.execute(
                text("select count(*) from task_instance where dag_id = :d and run_id like :p"),
                {"d": dag_id, "p": f"{name}\\_%"},
            ).scalar_one()
        per = 1000.0 / tis  # ms, or counts x 1000, per task instance -> divide below
        cpu = [round((b - a) * per, 3) for a, b in zip(before["cpu"], after["cpu"], strict=True)]
        kinds = FIELDS[1:]
        sql = {
            who: {k: round((after["sql"][i][j + 1] - before["sql"][i][j + 1]) / tis, 2) for j, k in enumerate(kinds)}
            for i, who in enumerate(("scheduler", "workers"))
        }
        rows = {
            table: [round((a - before["rows"].get(table, (0, 0))[k]) / tis, 2) for k, a in enumerate(values)]
            for table, values in after["rows"].items()
        }
        return {
            "task_instances": tis,
            "wall_s": [round(float(w), 3) for w in walls],
            "wall_median_s": round(float(statistics.median(walls)), 3),
            "cpu_ms_per_ti": {"scheduler": cpu[0], "workers": cpu[1], "postgres": cpu[2], "total": round(sum(cpu), 3)},
            "statements_per_ti": sql,
            "rows_inserted_updated_per_ti": {t: v for t, v in rows.items() if any(v)},
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(BENCH_DIR.parent), help="the checkout to measure (default: this one)")
    parser.add_argument("--chains", type=int, default=3, help="counted runs of the 50-task chain")
    parser.add_argument("--noops", type=int, default=1, help="counted runs of the 1,000 no-op tasks")
    parser.add_argument("--label", default=None, help="name printed with the figures (default: the tree's HEAD)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--home-parent", default="~/.cache", help="where the temp ZONDA_HOME is created")
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "-C", str(TREE), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    label = args.label or head.stdout.strip() or TREE.name
    phases = [(n, d, r) for n, d, r in (("chain", CHAIN, args.chains), ("noop", NOOP, args.noops)) if r > 0]
    bench = Bench(args)
    results: dict[str, Any] = {"label": label, "tree": str(TREE), "cpus": os.cpu_count(), "load": os.getloadavg()}
    try:
        bench.setup()
        bench.start()
        for name, dag_id, _ in phases:
            bench.run(dag_id, f"warmup_{name}")
        for name, dag_id, runs in phases:
            results[name] = bench.phase(name, dag_id, runs)
            r = results[name]
            log(f"{label} {name}: {r['task_instances']} TIs, wall median {r['wall_median_s']} s")
            log(f"{label} {name}: CPU ms/TI {r['cpu_ms_per_ti']}")
            log(f"{label} {name}: statements/TI {r['statements_per_ti']}; rows/TI {r['rows_inserted_updated_per_ti']}")
    finally:
        bench.teardown()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
