#!/usr/bin/env python3
"""Zonda start-up and ``dags test`` benchmarks, optionally side by side with Apache Airflow and Luigi.

usage: python3 bench/run.py [--repeat N] [--with-peers] [--json out.json]

Stdlib only. Prints figures; it never asserts on timings (the "met?" column is information, the exit code is
0 unless a benchmarked command itself fails). Every command gets one discarded warm-up run and then N timed runs;
wall time is ``time.perf_counter`` around the child process, peak memory is ``ru_maxrss`` from ``os.wait4``
(the maximum over the waited-for process tree, not a sum). With ``--with-peers`` the runs of the three systems
are interleaved round-robin, so slow drift of this machine's speed hits all of them alike.

See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"
ZONDA_DAGS = {"chain": "bench_chain50", "fan": "bench_fanout200"}
TASKS = {"chain": 50, "fan": 202}
AIRFLOW_DAGS = {"chain": "bench_chain50", "fan": "bench_fan200"}
MB = 1_000_000 / 1024  # KiB in one MB (10**6 bytes): ru_maxrss is in KiB on Linux


@dataclass
class Run:
    wall_s: float
    maxrss_kib: int
    rc: int
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Bench:
    """One command of one system, measured ``repeat`` times after one warm-up."""

    system: str
    metric: str
    cmd: list[str]
    env: dict[str, str]
    after: object = None  # callable(Bench) -> dict of extra figures read after each run (e.g. from the metastore)
    runs: list[Run] = field(default_factory=list)
    warmup: Run | None = None
    last_output: str = ""

    def run_once(self) -> Run:
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        if proc.stdout:
            proc.stdout.close()
        self.last_output = out.decode(errors="replace")
        run = Run(wall, usage.ru_maxrss, rc)
        if rc == 0 and self.after is not None:
            try:
                run.extra = self.after(self)
            except Exception as exc:  # a readout problem must not hide the timing
                print(f"  [{self.system}/{self.metric}] readout failed: {exc}", file=sys.stderr)
        if rc != 0:
            tail = "\n".join(self.last_output.splitlines()[-15:])
            print(f"  [{self.system}/{self.metric}] rc={rc}: {' '.join(self.cmd)}\n{tail}", file=sys.stderr)
        return run

    def ok(self) -> list[Run]:
        return [r for r in self.runs if r.rc == 0]

    def stat(self, key: str = "wall_s") -> tuple[float, float, float] | None:
        values = [self._value(r, key) for r in self.ok()]
        values = [v for v in values if v is not None]
        if not values:
            return None
        return statistics.median(values), min(values), max(values)

    @staticmethod
    def _value(run: Run, key: str) -> float | None:
        if key == "wall_s":
            return run.wall_s
        if key == "maxrss_mib":
            return run.maxrss_kib / 1024
        return run.extra.get(key)

    def as_json(self) -> dict:
        keys = ["wall_s", "maxrss_mib", *sorted({k for r in self.ok() for k in r.extra})]
        return {
            "system": self.system,
            "metric": self.metric,
            "cmd": self.cmd,
            "warmup": vars(self.warmup) if self.warmup else None,
            "runs": [vars(r) for r in self.runs],
            "n_ok": len(self.ok()),
            "summary": {k: dict(zip(("median", "min", "max"), s, strict=True)) for k in keys if (s := self.stat(k))},
        }


# --------------------------------------------------------------------------------------------- metastore readout


def _ts(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).replace("T", " ")
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=None) if dt.tzinfo is None else dt.astimezone(tz=None).replace(tzinfo=None)


def read_last_run(db_path: Path, dag_id: str, ti_join: str) -> dict[str, float]:
    """In-run figures of the newest dag_run of ``dag_id``: dag_run end-start, and task-to-task gaps.

    The gap is ``start(next) - end(previous)`` over task instances ordered by start_date; in a chain (tasks run
    one after another) that is the time from one task's end to its downstream task's start.
    """
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = con.execute(
            "select id, run_id, state, start_date, end_date from dag_run where dag_id = ? order by id desc limit 1",
            (dag_id,),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"no dag_run for {dag_id} in {db_path}")
        run_pk, run_id, state, start, end = row
        tis = con.execute(
            f"select task_id, state, start_date, end_date from task_instance where {ti_join} "
            "and start_date is not null order by start_date",
            (run_pk,) if "dag_run_id" in ti_join else (dag_id, run_id),
        ).fetchall()
    finally:
        con.close()
    spans = [(_ts(s), _ts(e)) for _, _, s, e in tis if e is not None]
    gaps = [(spans[i + 1][0] - spans[i][1]).total_seconds() for i in range(len(spans) - 1)]
    durations = [(e - s).total_seconds() for s, e in spans]
    out = {
        "inner_s": (_ts(end) - _ts(start)).total_seconds() if start and end else float("nan"),
        "tasks_success": float(sum(1 for t in tis if t[1] == "success")),
        "run_success": 1.0 if state == "success" else 0.0,
    }
    if gaps:
        out["gap_median_s"] = statistics.median(gaps)
    if durations:
        out["task_dur_median_s"] = statistics.median(durations)
    if spans:
        out["start_to_first_ti_s"] = (spans[0][0] - _ts(start)).total_seconds()
        out["last_ti_to_end_s"] = (_ts(end) - spans[-1][1]).total_seconds()
    return out


# --------------------------------------------------------------------------------------------------- systems


def clean_env(drop_prefixes: tuple[str, ...]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def zonda_benches(home: Path) -> list[Bench]:
    env = clean_env(("ZONDA_", "ZONDA__"))
    env.update(
        {
            "ZONDA_HOME": str(home),
            "ZONDA__CORE__LOAD_EXAMPLES": "false",
            "ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        }
    )
    py, cli, db = str(VENV_BIN / "python"), str(VENV_BIN / "zonda"), home / "zonda.db"

    def readout(dag_id: str):
        return lambda _bench: read_last_run(db, dag_id, "dag_run_id = ?")

    return [
        Bench("zonda", "baseline", [py, "-c", "pass"], env),
        Bench("zonda", "help", [cli, "--help"], env),
        Bench("zonda", "version", [cli, "version"], env),
        Bench("zonda", "import", [py, "-c", "import zonda"], env),
        Bench("zonda", "import_api", [py, "-c", "from zonda import DAG, task"], env),
        Bench("zonda", "chain", [cli, "dags", "test", ZONDA_DAGS["chain"], "-q"], env, readout(ZONDA_DAGS["chain"])),
        Bench("zonda", "fan", [cli, "dags", "test", ZONDA_DAGS["fan"], "-q"], env, readout(ZONDA_DAGS["fan"])),
    ]


def airflow_env(root: Path, peers_dir: Path) -> dict[str, str]:
    """The same settings as the peers' env.sh (SQLite AIRFLOW_HOME under /tmp/peers)."""
    env = clean_env(("AIRFLOW_", "AIRFLOW__"))
    home = root / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(peers_dir / "dags"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    return env


def airflow_benches(root: Path, peers_dir: Path) -> list[Bench]:
    env = airflow_env(root, peers_dir)
    venv = root / "airflow" / "bin"
    py, cli = str(venv / "python"), str(venv / "airflow")
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    if not db.exists():
        print(f"airflow: creating the metadata DB ({db}) with `airflow db migrate` ...", file=sys.stderr)
        subprocess.run([cli, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)

    def readout(dag_id: str):
        return lambda _bench: read_last_run(db, dag_id, "dag_id = ? and run_id = ?")

    return [
        Bench("airflow", "baseline", [py, "-c", "pass"], env),
        Bench("airflow", "help", [cli, "--help"], env),
        Bench("airflow", "version", [cli, "version"], env),
        Bench("airflow", "import", [py, "-c", "import airflow"], env),
        Bench("airflow", "import_api", [py, "-c", "from airflow.sdk import DAG, task"], env),
        Bench("airflow", "chain", [cli, "dags", "test", AIRFLOW_DAGS["chain"]], env, readout(AIRFLOW_DAGS["chain"])),
        Bench("airflow", "fan", [cli, "dags", "test", AIRFLOW_DAGS["fan"]], env, readout(AIRFLOW_DAGS["fan"])),
    ]


def parse_bench_lines(bench: Bench) -> dict[str, float]:
    """``BENCH key=value`` lines printed by the peers' scripts (luigi_tasks.py prints inner_s = luigi.build wall)."""
    out = {}
    for line in bench.last_output.splitlines():
        if line.startswith("BENCH ") and "=" in line:
            key, _, value = line[6:].strip().partition("=")
            out[key] = float(value)
    return out


def luigi_benches(root: Path, peers_dir: Path) -> list[Bench]:
    env = clean_env(("LUIGI_",))
    venv = root / "luigi" / "bin"
    py, script = str(venv / "python"), str(peers_dir / "luigi_tasks.py")

    benches = [
        Bench("luigi", "baseline", [py, "-c", "pass"], env),
        Bench("luigi", "help", [str(venv / "luigi"), "--help"], env),
        Bench("luigi", "import", [py, "-c", "import luigi"], env),
        Bench("luigi", "import_api", [py, "-c", "from luigi import Task, build"], env),
    ]
    for kind, n in (("chain", 50), ("fan", 200)):
        benches.append(Bench("luigi", kind, [py, script, kind, str(n), "1"], env, parse_bench_lines))
    return benches


# ------------------------------------------------------------------------------------------------------ report

# (label, metric, figure, target value, unit for target)
ROWS = [
    ("python -c pass (baseline)", "baseline", "wall_s", None),
    ("CLI --help, wall", "help", "wall_s", 0.150),
    ("CLI version, wall", "version", "wall_s", 0.150),
    ("import <pkg>, wall", "import", "wall_s", 0.060),
    ("import DAG API, wall", "import_api", "wall_s", None),
    ("import <pkg>, peak RSS", "import", "maxrss_mib", None),
    ("chain 50: process wall", "chain", "wall_s", 0.5),
    ("chain 50: in-run (dag_run end-start)", "chain", "inner_s", None),
    ("chain 50: median gap end->next start", "chain", "gap_median_s", None),
    ("chain 50: median task duration", "chain", "task_dur_median_s", None),
    ("chain 50: peak RSS", "chain", "maxrss_mib", None),
    ("fan 1->200->1: process wall", "fan", "wall_s", 1.0),
    ("fan 1->200->1: in-run (dag_run end-start)", "fan", "inner_s", None),
    ("fan 1->200->1: median gap between tasks", "fan", "gap_median_s", None),
    ("fan 1->200->1: peak RSS", "fan", "maxrss_mib", 80 * MB / 1024),
]
PEER_NOTES = {
    ("airflow", "help"): "airflow --help",
    ("airflow", "version"): "airflow version",
    ("airflow", "import_api"): "from airflow.sdk import DAG, task",
    ("airflow", "chain"): "airflow dags test",
    ("luigi", "help"): "luigi --help",
    ("luigi", "import_api"): "from luigi import Task, build",
    ("luigi", "chain"): "in-process luigi.build(local_scheduler)",
}


def fmt(stat: tuple[float, float, float] | None, figure: str, spread: bool = True) -> str:
    if stat is None:
        return "-"
    med, lo, hi = stat
    if figure == "maxrss_mib":
        text = f"{med:.0f} MiB"
        return f"{text} ({lo:.0f}-{hi:.0f})" if spread and hi - lo >= 1 else text
    if med < 1.0:
        digits = 0 if med >= 0.01 else 1
        text = f"{med * 1000:.{digits}f} ms"
        return f"{text} ({lo * 1000:.{digits}f}-{hi * 1000:.{digits}f})" if spread else text
    return f"{med:.2f} s ({lo:.2f}-{hi:.2f})" if spread else f"{med:.2f} s"


def fmt_target(target: float | None, figure: str) -> str:
    if target is None:
        return ""
    if figure == "maxrss_mib":
        return "≤ 80 MB (76.3 MiB)"
    return f"≤ {target * 1000:.0f} ms" if target < 1 else f"≤ {target:.1f} s"


def print_table(benches: dict[tuple[str, str], Bench], systems: list[str]) -> list[str]:
    header = ["metric", *systems, "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, metric, figure, target in ROWS:
        if not any((system, metric) in benches for system in systems):
            continue  # not measured in this run (--only)
        cells = [label]
        for system in systems:
            bench = benches.get((system, metric))
            cells.append(fmt(bench.stat(figure), figure) if bench else "-")
        zonda = benches.get(("zonda", metric))
        zstat = zonda.stat(figure) if zonda else None
        met = "" if target is None or zstat is None else ("yes" if zstat[0] <= target else "**no**")
        cells += [fmt_target(target, figure), met]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return lines


def per_task_lines(benches: dict[tuple[str, str], Bench], systems: list[str]) -> list[str]:
    """Marginal in-run cost per task: inner_s / tasks (the fan counts all 202 tasks)."""
    out = []
    for kind in ("chain", "fan"):
        parts = []
        for system in systems:
            bench = benches.get((system, kind))
            stat = bench.stat("inner_s") if bench else None
            if stat:
                parts.append(f"{system} {stat[0] * 1000 / TASKS[kind]:.2f} ms/task")
        if parts:
            out.append(f"in-run per task, {kind} ({TASKS[kind]} tasks): " + ", ".join(parts))
    return out


# ------------------------------------------------------------------------------------------------- --profile


def profile_chain(home: Path, top: int = 12) -> None:
    """Where `zonda dags test bench_chain50 -q` spends its time: top-level imports and cProfile cumulative."""
    env = zonda_benches(home)[0].env
    py = str(VENV_BIN / "python")
    cmd = ["-m", "zonda", "dags", "test", ZONDA_DAGS["chain"], "-q"]
    out = subprocess.run([py, "-X", "importtime", *cmd], env=env, capture_output=True, text=True, check=False)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith("  "):  # top level: imported by Zonda's own code or the interpreter
            rows.append((int(cumulative), name.strip()))
    print(f"\n## -X importtime, top-level imports of `zonda {' '.join(cmd[2:])}` (cumulative, one run)")
    for micros, name in sorted(rows, reverse=True)[:top]:
        print(f"  {micros / 1000:7.1f} ms  {name}")
    prof = Path(tempfile.mkdtemp(prefix="zonda_prof_")) / "chain.prof"
    subprocess.run([py, "-m", "cProfile", "-o", str(prof), *cmd], env=env, capture_output=True, check=False)
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.sort_stats("cumulative").print_stats(r"zonda/(cli|runner|plugins|metastore|dagbag)/?", top * 2)
    print("\n## cProfile (cumulative; profiler overhead inflates the times), Zonda functions only")
    lines = buf.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    print("\n".join(line.replace(str(REPO) + "/", "") for line in lines[start:] if line.strip()))
    shutil.rmtree(prof.parent, ignore_errors=True)


# -------------------------------------------------------------------------------------------------------- main


def make_zonda_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="zonda_bench_"))
    (home / "dags").mkdir()
    for name in ZONDA_DAGS.values():
        shutil.copy(BENCH_DIR / "dags" / f"{name}.py", home / "dags" / f"{name}.py")
    return home


def source_fingerprint() -> str:
    """A digest of (path, size, mtime) of every file under core/src: tells whether the code changed mid-run."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((REPO / "core" / "src").rglob("*.py")):
        st = path.stat()
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def git_state() -> str:
    """HEAD and the number of locally modified files under core/ (read-only git commands)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = len([line for line in git("status", "--porcelain", "--", "core").splitlines() if line.strip()])
    return f"git HEAD {head}, {dirty} modified/untracked file(s) under core/ measured as they are in the working tree"


def compile_sources() -> None:
    t0 = time.perf_counter()
    subprocess.run([str(VENV_BIN / "python"), "-m", "compileall", "-q", str(REPO / "core" / "src")], check=True)
    print(
        f"compiled core/src to .pyc in {time.perf_counter() - t0:.1f} s (PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r} on this machine, so the editable Zonda sources would "
        "otherwise be compiled on every start; pip/uv-installed packages (SQLAlchemy, Airflow, Luigi, ...) "
        "ship their .pyc from install time)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per command, after one warm-up (default 5)")
    ap.add_argument("--with-peers", action="store_true", help="also measure Airflow and Luigi, interleaved")
    ap.add_argument("--json", type=Path, help="write every run to this JSON file")
    ap.add_argument("--peers-root", type=Path, default=Path("/tmp/peers"), help="venvs from peers/install.sh")
    ap.add_argument(
        "--peers-dir",
        type=Path,
        default=REPO.parent / "shared" / "peers",
        help="peers' DAGs + scripts (default ../shared/peers)",
    )
    ap.add_argument("--only", help="comma-separated metrics (baseline,help,version,import,import_api,chain,fan)")
    ap.add_argument("--keep-home", action="store_true", help="do not delete the temp ZONDA_HOME")
    ap.add_argument("--profile", action="store_true", help="also print -X importtime and cProfile of the chain")
    a = ap.parse_args()

    print(f"# Zonda benchmarks  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"host python3 {platform.python_version()} (harness only)"
    )
    compile_sources()
    fingerprint = source_fingerprint()
    print(f"{git_state()}; core/src fingerprint {fingerprint}")
    home = make_zonda_home()
    print(
        f"ZONDA_HOME={home} (SQLite metastore zonda.db, created by the warm-up run), ZONDA__CORE__LOAD_EXAMPLES=false"
    )

    all_benches: list[Bench] = zonda_benches(home)
    systems = ["zonda"]
    if a.with_peers:
        if not (a.peers_root / "airflow" / "bin" / "airflow").exists() or not (a.peers_root / "luigi").exists():
            print(
                f"peers: no venvs in {a.peers_root}. Create them once (about 1 min, from PyPI) with:\n"
                f"  cp -r {a.peers_dir} /tmp/peers_scripts && chmod -R u+w /tmp/peers_scripts && "
                "cd /tmp/peers_scripts && RESULTS_DIR=/tmp/peers/results ./install.sh",
                file=sys.stderr,
            )
            return 2
        all_benches += airflow_benches(a.peers_root, a.peers_dir)
        all_benches += luigi_benches(a.peers_root, a.peers_dir)
        systems += ["airflow", "luigi"]
        versions = []
        for name, dist in (("airflow", "apache-airflow"), ("luigi", "luigi")):
            out = subprocess.run(
                [
                    str(a.peers_root / name / "bin" / "python"),
                    "-c",
                    f"import importlib.metadata as m; print(m.version({dist!r}))",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            versions.append(f"{dist} {out.stdout.strip()}")
        print("peers: " + ", ".join(versions) + f" (venvs in {a.peers_root}, DAGs from {a.peers_dir / 'dags'})")
    zver = subprocess.run(
        [str(VENV_BIN / "python"), "-c", "import sys, zonda; print(zonda.__version__, sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    print(f"zonda {zver[0] if zver else '?'} on CPython {zver[1] if len(zver) > 1 else '?'} ({VENV_BIN})")
    if a.only:
        wanted = set(a.only.split(","))
        all_benches = [b for b in all_benches if b.metric in wanted]

    by_metric: dict[str, list[Bench]] = {}
    for bench in all_benches:
        by_metric.setdefault(bench.metric, []).append(bench)
    print(f"\n{a.repeat} timed runs + 1 warm-up per command; runs of the systems interleaved per metric:")
    for metric, group in by_metric.items():
        t0 = time.perf_counter()
        for bench in group:
            bench.warmup = bench.run_once()
        for _ in range(a.repeat):
            for bench in group:
                bench.runs.append(bench.run_once())
        summary = ", ".join(f"{b.system} {fmt(b.stat(), 'wall_s', spread=False)}" for b in group)
        print(f"  {metric:<10} {summary}   [{time.perf_counter() - t0:.0f} s]", flush=True)

    benches = {(b.system, b.metric): b for b in all_benches}
    print("\nmedian (min-max) of the timed runs; 'met?' compares Zonda's median with the target\n")
    lines = print_table(benches, systems)
    extra = per_task_lines(benches, systems)
    if extra:
        print()
        print("\n".join(extra))
    notes = [
        "zonda: `zonda dags test <dag> -q`, tasks run one after another in the CLI process, "
        "recorded in the SQLite metastore",
        "airflow: `airflow dags test <dag>` (SQLite, peers' bench_dags.py); luigi: luigi_tasks.py, no metastore "
        "(in-run = wall of luigi.build(), no per-task timestamps)",
        "peak RSS: ru_maxrss of the process (os.wait4), MiB",
    ]
    if not a.with_peers:
        notes = [notes[0], notes[2]]
    print("\n" + "\n".join(f"* {n}" for n in notes))
    if a.profile:
        profile_chain(home)
    if source_fingerprint() != fingerprint:
        print(
            "\nWARNING: files under core/src changed during this run (someone edited the code), so the Zonda "
            "rows mix code versions; run again for a consistent set",
            file=sys.stderr,
        )
    failed = [f"{b.system}/{b.metric}" for b in all_benches if len(b.ok()) != len(b.runs)]
    if failed:
        print(f"\nFAILED runs in: {', '.join(failed)}", file=sys.stderr)
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "machine": {"node": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform()},
                    "repeat": a.repeat,
                    "zonda_home": str(home),
                    "git": git_state(),
                    "core_src_fingerprint": fingerprint,
                    "table": lines,
                    "benches": [b.as_json() for b in all_benches],
                },
                indent=1,
            )
        )
        print(f"\nwrote {a.json}")
    if not a.keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
