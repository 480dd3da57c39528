#!/usr/bin/env python3
"""Zonda's real scheduler (LocalExecutor on the local PostgreSQL), optionally beside Airflow 3.3.2's.

usage: python3 bench/bench_scheduler.py [--triggers 3] [--no-airflow] [--keep-home]

Starts ``zonda scheduler`` (scheduler + DAG processor in one process, LocalExecutor, parallelism 32) as a
subprocess on a fresh PostgreSQL database, triggers each bench DAG ``--triggers`` times one run at a time (after
one warm-up run that is not counted), and reads the timestamps back from ``dag_run`` / ``task_instance``:

* trigger -> success = ``dag_run.end_date - dag_run.queued_at``;
* gap = ``start_date`` of a task minus the latest ``end_date`` of its upstream tasks (as the peers'
  ``analyse_runs.py`` defines it), split into upstream end -> queued (the scheduler) and queued -> start
  (executor hand-over, fork, the task process marking itself running);
* 1,000 independent no-op tasks: 1000 / (last task end - run queued_at);
* a new DAG file: written into ``dags/`` while the scheduler runs, then ``serialized_dag`` is polled every 20 ms;
  write -> stored, and write -> first task start (``schedule=None``, triggered as soon as it is stored; and
  ``schedule="@once"``, started by the scheduler alone);
* memory: VmRSS (and PSS, which splits pages shared by forks) of the scheduler and all its descendants, summed,
  sampled every 100 ms during the fan-out runs.

Unless ``--no-airflow``, the same invocation then runs the peers' ``bench_airflow_scheduler.sh`` (api-server,
dag-processor, scheduler, LocalExecutor on the same PostgreSQL; about 6 minutes) and prints one table with both.
Prints figures, asserts nothing. Every process it starts is stopped by process group, every database it creates
is dropped. See bench/README.md ("Scheduler").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from _venv import BENCH_DIR, REPO, VENV, VENV_PY, reexec_in_venv

reexec_in_venv(__file__)  # the bench needs SQLAlchemy + psycopg and Zonda's trigger_dag

from sqlalchemy import create_engine, text  # noqa: E402

PG_BASE = "postgresql://postgres@127.0.0.1:5432"
DAG_FILES = ["bench_chain50.py", "bench_fanout200.py"]
CHAIN, FAN, NOOP = "bench_chain50", "bench_fanout200", "bench_noop1000"
N_NOOP = 1000
MB = 1_000_000 / 1024  # KiB in one MB: VmRSS is in KiB

NOOP_DAG = '''"""Benchmark DAG ``bench_noop1000``: 1,000 independent no-op PythonOperator tasks."""

from datetime import datetime

from zonda import DAG
from zonda.operators import PythonOperator


def noop():
    return None


with DAG(
    "bench_noop1000",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=1000,
    tags=["bench"],
) as dag:
    for i in range(1000):
        PythonOperator(task_id=f"n{i:04d}", python_callable=noop)
'''

NEW_DAG = '''"""A DAG file written while the zonda scheduler runs (bench/bench_scheduler.py)."""

from datetime import datetime

from zonda import DAG
from zonda.operators import PythonOperator


def noop():
    return None


with DAG("{dag_id}", schedule={schedule}, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    PythonOperator(task_id="only", python_callable=noop)
'''


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- processes -----------------------------------------------------------------------------------------------


def stop_group(proc: subprocess.Popen, name: str, grace: float = 40.0) -> None:
    """SIGTERM the process group, wait up to ``grace`` s, then SIGKILL whatever of the group is left."""
    if proc.poll() is None:
        log(f"stopping {name} (pgid {proc.pid}) with SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"{name} still running after {grace:g} s: SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (forked workers, task children)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_memory(root: int) -> tuple[int, float, float]:
    """(processes, summed VmRSS MB, summed PSS MB) of ``root`` and its descendants."""
    n, rss, pss = 0, 0, 0
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        n += 1
                        break
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except (OSError, ValueError):
            continue
    return n, rss / MB, pss / MB


class MemorySampler:
    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval = root, interval
        self.samples: list[tuple[int, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(tree_memory(self.root))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --- Zonda ---------------------------------------------------------------------------------------------------


class ZondaBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = args.db
        self.url = f"{PG_BASE}/{self.db}"
        # Not /tmp by default: on this machine creating a file or folder there costs 0.3-0.6 ms (15-30x the same
        # disk elsewhere), and every task attempt creates its log folder and file. A user's ZONDA_HOME is not
        # in /tmp either. --home-parent /tmp measures the slow case.
        parent = Path(args.home_parent).expanduser()
        parent.mkdir(parents=True, exist_ok=True)
        self.home = Path(tempfile.mkdtemp(prefix="zonda_bench_sched_", dir=parent))
        self.dags = self.home / "dags"
        self.log_path = self.home / "scheduler.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA_", "AIRFLOW_"))}
        self.env.update(
            ZONDA_HOME=str(self.home),
            ZONDA__DATABASE__SQL_ALCHEMY_CONN=self.url,
            ZONDA__CORE__EXECUTOR="LocalExecutor",
            ZONDA__CORE__PARALLELISM="32",
            ZONDA__CORE__MAX_ACTIVE_TASKS_PER_DAG="256",
            ZONDA__CORE__LOAD_EXAMPLES="false",
            ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",  # the benchmark triggers its DAGs
        )
        self.proc: subprocess.Popen | None = None
        self.engine = None
        self.results: dict[str, object] = {}
        self.failures: list[str] = []

    # set-up / tear-down

    def admin(self, sql: str) -> None:
        eng = create_engine(f"{PG_BASE.replace('postgresql://', 'postgresql+psycopg://')}/postgres")
        try:
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(sql))
        finally:
            eng.dispose()

    def setup(self) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        self.admin(f'CREATE DATABASE "{self.db}"')
        log(f"created database {self.db}; ZONDA_HOME={self.home}")
        self.dags.mkdir(parents=True)
        for name in DAG_FILES:
            shutil.copy(BENCH_DIR / "dags" / name, self.dags / name)
        (self.dags / "bench_noop1000.py").write_text(NOOP_DAG)
        code = (
            "import time; t0 = time.perf_counter()\n"
            "from zonda.config import load_settings\n"
            "from zonda.metastore.db import Metastore\n"
            "from zonda.dag_processing import DagProcessor\n"
            "s = load_settings(); m = Metastore.from_settings(s); m.init()\n"
            "t1 = time.perf_counter(); p = DagProcessor(s, m); r = p.run_once(); p.close()\n"
            "print(f'init {t1 - t0:.2f} s; ' + r.summary())\n"
            "if r.errors: raise SystemExit(f'import errors: {r.errors}')\n"
        )
        out = subprocess.run(
            [str(VENV_PY), "-c", code], check=False, env=self.env, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"storing the DAGs failed (rc {out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")
        log(f"metastore initialised and DAGs stored: {out.stdout.strip().splitlines()[-1]}")
        from zonda.metastore.db import Metastore

        self.engine = Metastore(self.url, pool_size=4).engine

    def scheduler_cmd(self) -> list[str]:
        zonda = VENV / "bin" / "zonda"
        ok = subprocess.run(
            [str(zonda), "scheduler", "--help"], check=False, env=self.env, capture_output=True, timeout=60
        )
        if ok.returncode == 0:
            return [str(zonda), "scheduler"]
        log("`zonda scheduler --help` failed; starting zonda.scheduler.scheduler.Scheduler directly")
        return [
            str(VENV_PY),
            "-c",
            "from zonda.config import load_settings; from zonda.scheduler.scheduler import Scheduler; "
            "Scheduler(load_settings()).run(install_signals=True)",
        ]

    def start_scheduler(self) -> None:
        cmd = self.scheduler_cmd()
        self.scheduler_log = open(self.log_path, "w")  # noqa: SIM115  (closed in teardown)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=self.scheduler_log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log(f"started {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))} (pid {self.proc.pid})")
        deadline = t0 + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the scheduler exited with {self.proc.returncode} at start")
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "select id, start_date, latest_heartbeat from job where job_type='scheduler' "
                        "and state='running' order by id desc limit 1"
                    )
                ).first()
            if row is not None and row.latest_heartbeat > row.start_date:
                log(f"scheduler job {row.id} heartbeats ({time.monotonic() - t0:.2f} s after spawn)")
                return
            time.sleep(0.05)
        raise RuntimeError("the scheduler's job row did not heartbeat within 120 s")

    def teardown(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, "zonda scheduler")
            log(f"zonda scheduler exited with {self.proc.returncode}")
        if getattr(self, "scheduler_log", None):
            self.scheduler_log.close()
            shutil.copy(self.log_path, "/tmp/zonda_bench_sched_scheduler.log")
        if self.engine is not None:
            self.engine.dispose()
        try:
            self.admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            log(f"dropped database {self.db}")
        except Exception as exc:
            log(f"could not drop database {self.db}: {exc}")
        if self.args.keep_home:
            log(f"kept ZONDA_HOME {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    def scheduler_log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # runs

    def trigger(self, dag_id: str, run_id: str) -> None:
        from zonda.scheduler.runs import trigger_dag

        trigger_dag(self.engine, dag_id, run_id=run_id)

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> tuple[str, float]:
        t0 = time.monotonic()
        state = None
        while time.monotonic() - t0 < timeout:
            with self.engine.connect() as conn:
                state = conn.execute(
                    text("select state from dag_run where dag_id=:d and run_id=:r"), {"d": dag_id, "r": run_id}
                ).scalar()
            if state in ("success", "failed"):
                break
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the scheduler exited with {self.proc.returncode} during {dag_id} {run_id}")
            time.sleep(0.02)
        return state or "missing", time.monotonic() - t0

    def analyse(self, dag_id: str, run_id: str) -> dict[str, object]:
        with self.engine.connect() as conn:
            dr = conn.execute(
                text("select state, queued_at, start_date, end_date from dag_run where dag_id=:d and run_id=:r"),
                {"d": dag_id, "r": run_id},
            ).first()
            tis = conn.execute(
                text(
                    "select task_id, state, queued_dttm, start_date, end_date from task_instance "
                    "where dag_id=:d and run_id=:r"
                ),
                {"d": dag_id, "r": run_id},
            ).all()
        by = {ti.task_id: ti for ti in tis}
        gaps, to_queued, q2s = [], [], []
        for ti in tis:
            if ti.queued_dttm and ti.start_date:
                q2s.append((ti.start_date - ti.queued_dttm).total_seconds())
            ups = upstreams(dag_id, ti.task_id, by)
            if ups and ti.start_date and all(by[u].end_date for u in ups):
                up_end = max(by[u].end_date for u in ups)
                gaps.append((ti.start_date - up_end).total_seconds())
                if ti.queued_dttm:
                    to_queued.append((ti.queued_dttm - up_end).total_seconds())
        durs = [(ti.end_date - ti.start_date).total_seconds() for ti in tis if ti.start_date and ti.end_date]
        ends = [ti.end_date for ti in tis if ti.end_date]
        r: dict[str, object] = {
            "state": dr.state,
            "n_tis": len(tis),
            "n_success": sum(ti.state == "success" for ti in tis),
            "wall_s": (dr.end_date - dr.queued_at).total_seconds() if dr.end_date else None,
            "queued_to_run_start_s": (dr.start_date - dr.queued_at).total_seconds() if dr.start_date else None,
            "run_start_to_end_s": (dr.end_date - dr.start_date).total_seconds() if dr.end_date else None,
            "gap_median_s": median(gaps),
            "gap_p90_s": pct(gaps, 0.9),
            "gap_max_s": max(gaps) if gaps else None,
            "up_end_to_queued_median_s": median(to_queued),
            "queued_to_start_median_s": median(q2s),
            "task_duration_median_s": median(durs),
        }
        if ends and dr.queued_at:
            r["last_end_minus_queued_s"] = (max(ends) - dr.queued_at).total_seconds()
            r["tasks_per_s"] = len(tis) / r["last_end_minus_queued_s"]
        if dag_id == FAN and "start" in by and by["start"].end_date:
            mids = sorted(
                (ti for ti in tis if ti.task_id.startswith("m") and ti.start_date), key=lambda t: t.start_date
            )
            r["first_wave_gap_median_s"] = median(
                [(ti.start_date - by["start"].end_date).total_seconds() for ti in mids[:32]]
            )
            end = by.get("end")
            if end is not None and end.start_date and mids:
                r["fanin_gap_s"] = (end.start_date - max(ti.end_date for ti in mids)).total_seconds()
        return r

    def run_dag(self, dag_id: str, label: str, timeout: float) -> dict[str, object] | None:
        run_id = f"bench_{label}_{time.time_ns()}"
        t0 = time.monotonic()
        self.trigger(dag_id, run_id)
        state, waited = self.wait_run(dag_id, run_id, timeout)
        if state != "success":
            msg = f"{dag_id} {label}: state {state} after {waited:.1f} s (bound {timeout:g} s)"
            self.failures.append(msg)
            log(msg + "\n--- scheduler log (tail) ---\n" + self.scheduler_log_tail() + "\n---")
            return None
        r = self.analyse(dag_id, run_id)
        r["seen_s"] = time.monotonic() - t0
        log(
            f"{dag_id} {label}: {r['state']} {r['n_success']}/{r['n_tis']} ok, trigger->success {r['wall_s']:.3f} s"
            + (f", gap median {r['gap_median_s'] * 1000:.1f} ms" if r["gap_median_s"] is not None else "")
            + (f", {r['tasks_per_s']:.0f} tasks/s" if dag_id == NOOP else "")
        )
        return r

    def bench_dag(self, dag_id: str, timeout: float, sample_memory: bool = False) -> None:
        self.run_dag(dag_id, "warmup", timeout)  # not counted: first fork of each worker, cold caches
        runs = []
        sampler = MemorySampler(self.proc.pid) if sample_memory else contextlib.nullcontext()
        with sampler:
            for k in range(1, self.args.triggers + 1):
                r = self.run_dag(dag_id, f"run{k}", timeout)
                if r is not None:
                    runs.append(r)
        self.results[dag_id] = runs
        if sample_memory and sampler.samples:
            self.results["memory"] = {
                "rss_max_mb": max(s[1] for s in sampler.samples),
                "pss_max_mb": max(s[2] for s in sampler.samples),
                "procs_max": max(s[0] for s in sampler.samples),
                "samples": len(sampler.samples),
            }

    def bench_new_dag(self, schedule: str, k: int, timeout: float = 30.0) -> dict[str, float] | None:
        dag_id = f"bench_new_{slug(schedule)}_{k}_{time.time_ns() % 10**9}"
        path = self.dags / f"{dag_id}.py"
        tmp = self.dags / f".{dag_id}.tmp"
        tmp.write_text(NEW_DAG.format(dag_id=dag_id, schedule=schedule))
        written = datetime.now(UTC)
        t0 = time.monotonic()
        os.rename(tmp, path)  # atomic: the processor never sees half a file
        stored = None
        while time.monotonic() - t0 < timeout:
            with self.engine.connect() as conn:
                if conn.execute(text("select 1 from serialized_dag where dag_id=:d"), {"d": dag_id}).first():
                    stored = time.monotonic() - t0
                    break
            time.sleep(0.02)
        if stored is None:
            self.failures.append(f"new DAG file {dag_id}: not in serialized_dag within {timeout:g} s")
            log(self.failures[-1] + "\n" + self.scheduler_log_tail())
            return None
        if schedule == "None":
            self.trigger(dag_id, f"bench_new_{k}")
        start = None
        while time.monotonic() - t0 < timeout:
            with self.engine.connect() as conn:
                start = conn.execute(
                    text("select min(start_date) from task_instance where dag_id=:d"), {"d": dag_id}
                ).scalar()
            if start is not None:
                break
            time.sleep(0.02)
        if start is None:
            self.failures.append(f"new DAG file {dag_id}: no task started within {timeout:g} s")
            log(self.failures[-1] + "\n" + self.scheduler_log_tail())
            return None
        if start.tzinfo is None:  # a raw text() query returns the stored naive UTC value
            start = start.replace(tzinfo=UTC)
        r = {"stored_s": stored, "first_start_s": (start - written).total_seconds()}
        log(f"new DAG file ({schedule}) {dag_id}: stored {stored:.3f} s, first task start {r['first_start_s']:.3f} s")
        return r

    def run(self) -> None:
        self.setup()
        self.start_scheduler()
        idle = tree_memory(self.proc.pid)
        self.results["memory_idle"] = {"procs": idle[0], "rss_mb": idle[1], "pss_mb": idle[2]}
        only = set(self.args.only.split(",")) if self.args.only else {"chain", "fan", "noop", "new"}
        if "chain" in only:
            self.bench_dag(CHAIN, timeout=120)
        if "fan" in only:
            self.bench_dag(FAN, timeout=180, sample_memory=True)
        if "noop" in only:
            self.bench_dag(NOOP, timeout=300)
        for schedule in ("None", '"@once"') if "new" in only else ():
            runs = [self.bench_new_dag(schedule, k) for k in range(1, self.args.triggers + 1)]
            self.results[f"new_{slug(schedule)}"] = [r for r in runs if r]


def slug(schedule: str) -> str:
    return schedule.strip('"@').lower()


def upstreams(dag_id: str, task_id: str, by: dict) -> list[str]:
    if dag_id == CHAIN:
        i = int(task_id[1:])
        return [f"t{i - 1:03d}"] if i > 0 else []
    if dag_id == FAN:
        if task_id == "start":
            return []
        if task_id == "end":
            return [t for t in by if t.startswith("m")]
        return ["start"]
    return []


# --- Airflow -------------------------------------------------------------------------------------------------


def run_airflow(args: argparse.Namespace) -> dict[str, dict] | None:
    scripts = Path(args.peers_scripts)
    if not (scripts / "bench_airflow_scheduler.sh").exists():
        shutil.copytree(args.peers_dir, scripts, dirs_exist_ok=True)
        subprocess.run(["chmod", "-R", "u+w", str(scripts)], check=False)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA_", "AIRFLOW_"))}
    env.update(RESULTS_DIR=str(results), TRIGGERS=str(args.triggers), PEERS_ROOT=args.peers_root)
    started = time.time()
    log_path = Path("/tmp/zonda_bench_sched_airflow.log")
    log(f"running {scripts}/bench_airflow_scheduler.sh (TRIGGERS={args.triggers}); output in {log_path}")
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(scripts / "bench_airflow_scheduler.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(args.airflow_timeout)
        except subprocess.TimeoutExpired:
            log(f"the Airflow bench did not finish within {args.airflow_timeout:g} s")
        finally:
            stop_group(proc, "bench_airflow_scheduler.sh", grace=30)
    log(f"Airflow bench exited with {proc.returncode} after {time.time() - started:.0f} s")
    print("\n".join(log_path.read_text(errors="replace").splitlines()[-14:]), flush=True)
    found: dict[str, dict] = {}
    for metric in ("sched_chain50", "sched_fan200"):
        for f in results.glob(f"{metric}.airflow-*.json"):
            if f.stat().st_mtime >= started:
                found[metric] = json.loads(f.read_text())
    if not args.keep_airflow_db:
        try:
            subprocess.run(["su", "postgres", "-c", "dropdb --if-exists airflow_bench"], check=True, timeout=60)
            log("dropped database airflow_bench (created by bench_airflow_scheduler.sh)")
        except Exception as exc:
            log(f"could not drop airflow_bench: {exc}")
    return found


# --- report --------------------------------------------------------------------------------------------------


def fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.1f} ms" if abs(v) < 1 else f"{v:.2f} s"


def med_of(runs: list[dict], key: str) -> float | None:
    return median([r[key] for r in runs if r.get(key) is not None])


def rng(runs: list[dict], key: str) -> str:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return f" ({fmt_s(min(vals))}-{fmt_s(max(vals))})" if len(vals) > 1 else ""


def report(z: ZondaBench, af: dict[str, dict] | None) -> None:
    chain = z.results.get(CHAIN, [])
    fan = z.results.get(FAN, [])
    noop = z.results.get(NOOP, [])
    new_none = z.results.get("new_none", [])
    new_once = z.results.get("new_once", [])
    afc = (af or {}).get("sched_chain50", {}).get("median", {})
    aff = (af or {}).get("sched_fan200", {}).get("median", {})
    af_label = "airflow 3.3.2" if af is not None else "airflow (not run)"

    def a(m: dict, key: str) -> str:
        return fmt_s(m.get(key)) if m else "-"

    def met(v: float | None, limit: float, higher: bool = False) -> str:
        if v is None:
            return "-"
        return "yes" if (v >= limit if higher else v <= limit) else "no"

    rows = []
    v = med_of(chain, "wall_s")
    rows.append(
        ("chain 50: trigger -> success", fmt_s(v) + rng(chain, "wall_s"), a(afc, "wall_s"), "≤ 1.5 s", met(v, 1.5))
    )
    v = med_of(chain, "gap_median_s")
    rows.append(
        ("chain 50: median gap (upstream end -> start)", fmt_s(v), a(afc, "gap_median_s"), "≤ 25 ms", met(v, 0.025))
    )
    rows.append(("chain 50: gap p90", fmt_s(med_of(chain, "gap_p90_s")), a(afc, "gap_p90_s"), "", ""))
    rows.append(
        ("chain 50: upstream end -> queued (median)", fmt_s(med_of(chain, "up_end_to_queued_median_s")), "-", "", "")
    )
    rows.append(
        (
            "chain 50: queued -> start (median)",
            fmt_s(med_of(chain, "queued_to_start_median_s")),
            a(afc, "queued_to_start_median_s"),
            "",
            "",
        )
    )
    rows.append(
        (
            "chain 50: task duration (median)",
            fmt_s(med_of(chain, "task_duration_median_s")),
            a(afc, "task_duration_median_s"),
            "",
            "",
        )
    )
    rows.append(("chain 50: queued_at -> run start", fmt_s(med_of(chain, "queued_to_run_start_s")), "-", "", ""))
    v = med_of(fan, "wall_s")
    rows.append(
        ("fan 1→200→1: trigger -> success", fmt_s(v) + rng(fan, "wall_s"), a(aff, "wall_s"), "≤ 2.5 s", met(v, 2.5))
    )
    rows.append(
        (
            "fan: first wave (32 mids) gap median",
            fmt_s(med_of(fan, "first_wave_gap_median_s")),
            a(aff, "first_wave_gap_median_s"),
            "",
            "",
        )
    )
    rows.append(
        ("fan: fan-in gap (end start - last mid end)", fmt_s(med_of(fan, "fanin_gap_s")), a(aff, "fanin_gap_s"), "", "")
    )
    rows.append(
        (
            "fan: queued -> start (median)",
            fmt_s(med_of(fan, "queued_to_start_median_s")),
            a(aff, "queued_to_start_median_s"),
            "",
            "",
        )
    )
    rows.append(
        (
            "fan: task duration (median)",
            fmt_s(med_of(fan, "task_duration_median_s")),
            a(aff, "task_duration_median_s"),
            "",
            "",
        )
    )
    v = med_of(noop, "tasks_per_s")
    vals = [r["tasks_per_s"] for r in noop if r.get("tasks_per_s")]
    extra = f" ({min(vals):.0f}-{max(vals):.0f})" if len(vals) > 1 else ""
    rows.append(
        (
            "1,000 no-op tasks: tasks/s end to end",
            f"{v:.0f}/s{extra}" if v else "-",
            "- (not measured)",
            "≥ 300/s",
            met(v, 300, higher=True),
        )
    )
    rows.append(
        ("1,000 no-op tasks: trigger -> success", fmt_s(med_of(noop, "wall_s")) + rng(noop, "wall_s"), "-", "", "")
    )
    rows.append(
        ("1,000 no-op tasks: queued -> start (median)", fmt_s(med_of(noop, "queued_to_start_median_s")), "-", "", "")
    )
    rows.append(
        ("1,000 no-op tasks: task duration (median)", fmt_s(med_of(noop, "task_duration_median_s")), "-", "", "")
    )
    rows.append(
        ("new DAG file: write -> in serialized_dag", fmt_s(med_of(new_none + new_once, "stored_s")), "-", "", "")
    )
    v = med_of(new_none, "first_start_s")
    rows.append(
        (
            "new DAG file (schedule=None, triggered once stored): write -> first task start",
            fmt_s(v) + rng(new_none, "first_start_s"),
            "-",
            "≤ 2 s",
            met(v, 2.0),
        )
    )
    v = med_of(new_once, "first_start_s")
    rows.append(
        (
            'new DAG file (schedule="@once", no trigger): write -> first task start',
            fmt_s(v) + rng(new_once, "first_start_s"),
            "-",
            "≤ 2 s",
            met(v, 2.0),
        )
    )
    mem = z.results.get("memory")
    idle = z.results.get("memory_idle")
    if idle:
        rows.append(
            (
                "memory idle: scheduler + workers, Σ VmRSS / Σ PSS",
                f"{idle['rss_mb']:.0f} / {idle['pss_mb']:.0f} MB ({idle['procs']} procs)",
                "-",
                "",
                "",
            )
        )
    if mem:
        rows.append(
            (
                "memory during fan-out: peak Σ VmRSS / Σ PSS",
                f"{mem['rss_max_mb']:.0f} / {mem['pss_max_mb']:.0f} MB (≤{mem['procs_max']} procs)",
                "-",
                "",
                "",
            )
        )

    print()
    print(f"| metric | zonda | {af_label} | target | met? |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    counts = ", ".join(
        f"{name} {len(z.results.get(key, []))}"
        for name, key in (
            ("chain", CHAIN),
            ("fan", FAN),
            ("noop", NOOP),
            ("new None", "new_none"),
            ("new @once", "new_once"),
        )
    )
    print(f"\nzonda runs counted: {counts} (of {z.args.triggers} each, after 1 warm-up per DAG)")
    if af:
        for metric, data in af.items():
            print(f"airflow {metric}: {data.get('n_ok')}/{data.get('n')} ok; conditions: {data.get('conditions')}")
    if z.failures:
        print("\nFAILURES:\n  " + "\n  ".join(z.failures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=3, help="counted runs per DAG (after one warm-up)")
    parser.add_argument("--no-airflow", action="store_true", help="do not run the peers' Airflow scheduler bench")
    parser.add_argument("--airflow-first", action="store_true", help="run Airflow before Zonda (default: after)")
    parser.add_argument("--db", default="zonda_bench_sched", help="PostgreSQL database to create (and drop)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temp ZONDA_HOME")
    parser.add_argument("--keep-airflow-db", action="store_true", help="leave the airflow_bench database")
    parser.add_argument("--peers-dir", default=str(REPO.parent / "shared" / "peers"), help="default ../shared/peers")
    parser.add_argument("--peers-scripts", default="/tmp/peers_scripts", help="writable copy of --peers-dir")
    parser.add_argument("--peers-root", default="/tmp/peers", help="where the peers' venvs are")
    parser.add_argument("--results-dir", default="/tmp/peers/results")
    parser.add_argument("--airflow-timeout", type=float, default=1500.0)
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--home-parent", default="~/.cache/zonda-bench", help="where the temp ZONDA_HOME is created")
    parser.add_argument("--only", default=None, help="a subset of Zonda's parts: chain,fan,noop,new (default: all)")
    args = parser.parse_args()

    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    log(
        f"zonda git HEAD {head.stdout.strip()} (+ working tree); {os.cpu_count()} CPUs; python {sys.version.split()[0]}"
    )
    af: dict[str, dict] | None = None
    if not args.no_airflow and args.airflow_first:
        af = run_airflow(args)
    z = ZondaBench(args)
    try:
        z.run()
    except Exception as exc:
        z.failures.append(f"zonda bench aborted: {type(exc).__name__}: {exc}")
        log(z.failures[-1] + "\n--- scheduler log (tail) ---\n" + z.scheduler_log_tail(60) + "\n---")
    finally:
        z.teardown()
    if not args.no_airflow and not args.airflow_first:
        af = run_airflow(args)
    report(z, af)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"zonda": z.results, "airflow": af, "failures": z.failures}, indent=1, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
