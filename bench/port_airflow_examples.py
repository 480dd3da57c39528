"""Port Airflow's own example DAGs with ``zonda dags port``, run both sides, and compare the task states.

    python3 bench/port_airflow_examples.py [--airflow-venv /tmp/peers/airflow] [--work DIR] [--only NAME ...]

Needs an Airflow 3.x virtualenv (``../shared/peers/install.sh`` makes one), so this is a tool, not a test. For
every DAG file of ``airflow/example_dags`` and ``airflow/providers/standard/example_dags``:

1. ``zonda dags port --out`` writes the ported copy; the lines it could not port are counted.
2. Each original file runs under Airflow (``DAG.test()``, in process, its own SQLite metastore) and each ported
   file under Zonda (``zonda.testing.run_dag``, as ``zonda dags test``), one subprocess per file and side, bounded
   by ``--timeout`` seconds, with the same logical date.
3. A file *parses* when it imports with at least one DAG and no error; a DAG *runs* when its run ends (success
   or failed) within the bound; it *matches* when every task instance ends in the same state on both sides.

Third-party packages the examples import but Zonda does not depend on (pendulum) are copied from the Airflow
venv onto the Zonda runs' ``PYTHONPATH`` (``--borrow``), so what is compared is Zonda, not a missing package.
Prints a summary and writes ``report.json`` and ``report.md`` (per DAG) into the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _venv import REPO, VENV_PY, reexec_in_venv

LOGICAL_DATE = "2024-01-02T00:00:00+00:00"

#: Runs DAG files under Airflow, one after the other in one process (Airflow's start-up costs some 20 s here),
#: each copied alone into the DAGS folder first,
#: each bounded by a timer; prints one ``@@RESULT@@{"file", "error", "dags": {dag_id: {"state", "tasks"}}}`` per file.
AIRFLOW_DRIVER = r"""
import json, os, shutil, sys, threading
from datetime import datetime
from pathlib import Path
root, date, timeout, files = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
from airflow.dag_processing.bundles.manager import DagBundlesManager
DagBundlesManager().sync_bundles_to_db()
def value(state):
    return str(getattr(state, "value", state))
current = {}
def give_up():
    # A timer thread, not SIGALRM (Airflow uses that for execution_timeout): report, then end this process; the
    # caller starts a new one for the files after this one.
    out = current["out"]
    out["dags"][current["dag"]] = {"state": "timed_out", "tasks": {}, "error": f"timed out after {timeout} s"}
    print("@@RESULT@@" + json.dumps(out), flush=True)
    os._exit(3)
for source in files:
    current.update(file=source, dag="(parsing)")
    # DAG.test() parses and stores its whole bundle: the bundle holds this file alone (and the folders beside it).
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for sibling in Path(source).parent.iterdir():
        if sibling.is_dir() and sibling.name not in ("__pycache__", "plugins"):
            shutil.copytree(sibling, root / sibling.name)
    path = str(shutil.copy(source, root))
    out = {"file": source, "error": None, "dags": {}}
    current["out"] = out
    timer = threading.Timer(timeout, give_up)
    timer.daemon = True
    timer.start()
    try:
        bag = BundleDagBag(dag_folder=path, bundle_path=root, bundle_name="dags-folder")
        errors = list(bag.import_errors.values())
        out["error"] = errors[0].strip().splitlines()[-1] if errors else None
        sync_bag_to_db(bag, "dags-folder", None)
        for dag_id, dag in sorted(bag.dags.items()):
            current["dag"] = dag_id
            try:
                run = dag.test(logical_date=date)
                tasks = {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): value(ti.state)
                         for ti in run.get_task_instances()}
                out["dags"][dag_id] = {"state": value(run.state), "tasks": tasks}
            except BaseException as exc:
                out["dags"][dag_id] = {"state": "crashed", "tasks": {}, "error": f"{type(exc).__name__}: {exc}"[:300]}
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        timer.cancel()
    print("@@RESULT@@" + json.dumps(out), flush=True)
"""

#: The same for a ported file under Zonda.
ZONDA_DRIVER = r"""
import json, sys
from pathlib import Path
path, date = Path(sys.argv[1]), sys.argv[2]
out = {"error": None, "dags": {}}
try:
    from zonda.dagbag import DagBag
    from zonda.testing import run_dag
    bag = DagBag(path.parent)
    bag.process_file(path)
    errors = list(bag.import_errors.values())
    out["error"] = str(errors[0]).strip().splitlines()[-1] if errors else None
    for dag_id, dag in sorted(bag.dags.items()):
        try:
            result = run_dag(dag, date)
            out["dags"][dag_id] = {"state": result.state, "tasks": result.states()}
        except BaseException as exc:
            out["dags"][dag_id] = {"state": "crashed", "tasks": {}, "error": f"{type(exc).__name__}: {exc}"[:300]}
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"[:300]
print("@@RESULT@@" + json.dumps(out))
"""


def _airflow_package(venv: Path) -> Path:
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow, os; print(os.path.dirname(airflow.__file__))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return Path(found.stdout.strip())


def _corpus(airflow_dir: Path, work: Path) -> list[Path]:
    """Copy the two example folders into ``work/original`` and list their DAG files."""
    files = []
    for name, source in (
        ("core", airflow_dir / "example_dags"),
        ("standard", airflow_dir / "providers/standard/example_dags"),
    ):
        target = work / "original" / name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        files += sorted(p for p in target.glob("*.py") if p.name != "__init__.py")
    return files


def _run(argv: list[str], env: dict[str, str], timeout: float, cwd: Path) -> tuple[dict | None, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s", time.perf_counter() - started
    elapsed = time.perf_counter() - started
    for line in done.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@") :]), "", elapsed
    tail = (done.stderr or done.stdout).strip().splitlines()
    return None, (tail[-1] if tail else f"exit code {done.returncode}")[:300], elapsed


def _env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("ZONDA", "AIRFLOW"))}
    env.update(extra)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airflow-venv", default=os.environ.get("ZONDA_PEER_AIRFLOW", "/tmp/peers/airflow"))
    parser.add_argument("--work", help="Work folder (default: a new temporary one, kept)")
    parser.add_argument("--timeout", type=float, default=180.0, help="Seconds per file and side")
    parser.add_argument("--borrow", nargs="*", default=["pendulum"], help="Packages copied from the Airflow venv")
    parser.add_argument(
        "--all-airflow", action="store_true", help="Run every file under Airflow, not only ported ones that parse"
    )
    parser.add_argument("--only", nargs="*", help="Only these file names (e.g. tutorial.py)")
    args = parser.parse_args()
    venv = Path(args.airflow_venv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="zonda-port-"))
    work.mkdir(parents=True, exist_ok=True)
    airflow_dir = _airflow_package(venv)
    files = [f for f in _corpus(airflow_dir, work) if not args.only or f.name in args.only]

    ported_root = work / "ported"
    port = subprocess.run(
        [
            str(VENV_PY),
            "-m",
            "zonda",
            "dags",
            "port",
            str(work / "original/core"),
            str(work / "original/standard"),
            "--out",
            str(ported_root),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=REPO,
    )
    unported: dict[str, int] = {}
    for line in port.stderr.splitlines():
        name = Path(line.split(":", 1)[0]).name
        unported[name] = unported.get(name, 0) + 1

    borrowed = work / "borrowed"
    site = Path(next((venv / "lib").glob("python*/site-packages")))
    for package in args.borrow:
        if not (borrowed / package).exists():
            shutil.copytree(site / package, borrowed / package, ignore=shutil.ignore_patterns("__pycache__"))

    airflow_home, zonda_home = work / "airflow_home", work / "zonda_home"
    zonda_home.mkdir(exist_ok=True)
    airflow_env = _env(
        os.environ,
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="false",
        AIRFLOW__CORE__UNIT_TEST_MODE="false",
    )
    if not (airflow_home / "airflow.db").exists():
        subprocess.run(
            [str(venv / "bin/airflow"), "db", "migrate"], env=airflow_env, capture_output=True, check=True, timeout=900
        )
    zonda_env = _env(
        os.environ, ZONDA_HOME=str(zonda_home), ZONDA__CORE__LOAD_EXAMPLES="false", PYTHONPATH=str(borrowed)
    )

    zonda_results = {}
    for original in files:
        ported = ported_root / original.parent.name / original.name
        z_out, z_err, z_secs = _run(
            [str(VENV_PY), "-c", ZONDA_DRIVER, str(ported), LOGICAL_DATE], zonda_env, args.timeout, work
        )
        zonda_results[original] = (z_out or {"error": z_err, "dags": {}}, z_secs)
    # Airflow is slow to start each DAG here (20-40 s): by default only the files whose port parses under Zonda
    # run under Airflow too (--all-airflow runs every file).
    airflow_files = [f for f in files if args.all_airflow or _parses(zonda_results[f][0])]
    started = time.perf_counter()
    by_file: dict[str, dict] = {}
    remaining = [str(path) for path in airflow_files]
    driver = [str(venv / "bin/python"), "-c", AIRFLOW_DRIVER, str(work / "airflow_dags"), LOGICAL_DATE]
    while remaining:  # a file that hangs ends its Airflow process; the next one goes on after it
        done = subprocess.run(
            [*driver, str(int(args.timeout)), *remaining],
            capture_output=True,
            text=True,
            check=False,
            timeout=args.timeout * len(remaining) + 600,
            env={**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(work / "airflow_dags")},
            cwd=work,
        )
        for line in done.stdout.splitlines():
            if line.startswith("@@RESULT@@"):
                result = json.loads(line[len("@@RESULT@@") :])
                by_file[result.pop("file")] = result
        left = [path for path in remaining if path not in by_file]
        if len(left) == len(remaining):  # not even one file came back: give up on the rest
            print(done.stderr[-3000:], file=sys.stderr)
            break
        remaining = left
    airflow_secs = time.perf_counter() - started

    rows = []
    for original in files:
        z_result, z_secs = zonda_results[original]
        skipped = "not run (its port does not parse under Zonda; --all-airflow runs it)"
        row = {
            "file": f"{original.parent.name}/{original.name}",
            "unported_lines": unported.get(original.name, 0),
            "airflow": by_file.get(
                str(original),
                {
                    "error": skipped
                    if original not in airflow_files
                    else "no result (the Airflow process ended early)",
                    "dags": {},
                },
            ),
            "zonda": z_result,
            "seconds": {"zonda": round(z_secs, 1)},
        }
        rows.append(row)
        print(_line(row), flush=True)
    print(f"Airflow: {airflow_secs:.0f} s for {len(airflow_files)} files in one process")
    summary = _summary(rows)
    (work / "report.json").write_text(json.dumps({"summary": summary, "files": rows}, indent=1))
    (work / "report.md").write_text(_markdown(rows, summary))
    print(json.dumps(summary, indent=1))
    print(f"report: {work / 'report.md'}")
    return 0


def _parses(side: dict) -> bool:
    return not side.get("error") and bool(side.get("dags"))


def _ran(dag: dict | None) -> bool:
    return dag is not None and dag.get("state") in ("success", "failed")


def _line(row: dict) -> str:
    a, z = row["airflow"], row["zonda"]
    same = sum(1 for d, run in z["dags"].items() if _ran(run) and run["tasks"] == a["dags"].get(d, {}).get("tasks"))
    return (
        f"{row['file']:<58} unported={row['unported_lines']:<2} airflow={'ok' if _parses(a) else 'ERR'}"
        f" zonda={'ok' if _parses(z) else 'ERR'} dags={len(z['dags'])} same={same}"
        + (f"  zonda error: {z['error']}" if z.get("error") else "")
    )


def _summary(rows: list[dict]) -> dict:
    dags_airflow = [(r, d) for r in rows for d in r["airflow"]["dags"]]
    return {
        "files": len(rows),
        "files_ported_without_manual_lines": sum(1 for r in rows if r["unported_lines"] == 0),
        "files_parse_airflow": sum(_parses(r["airflow"]) for r in rows),
        "files_parse_zonda": sum(_parses(r["zonda"]) for r in rows),
        "dags_airflow": len(dags_airflow),
        "dags_run_airflow": sum(_ran(r["airflow"]["dags"][d]) for r, d in dags_airflow),
        "dags_parse_zonda": sum(len(r["zonda"]["dags"]) for r in rows),
        "dags_run_zonda": sum(_ran(run) for r in rows for run in r["zonda"]["dags"].values()),
        "dags_same_states": sum(
            1
            for r, d in dags_airflow
            if _ran(r["zonda"]["dags"].get(d)) and r["zonda"]["dags"][d]["tasks"] == r["airflow"]["dags"][d]["tasks"]
        ),
    }


def _markdown(rows: list[dict], summary: dict) -> str:
    lines = ["| file | DAG | unported lines | Airflow | Zonda | same states |", "|---|---|---|---|---|---|"]
    for row in rows:
        a, z = row["airflow"], row["zonda"]
        for dag_id in sorted(set(a["dags"]) | set(z["dags"])) or ["-"]:
            ad, zd = a["dags"].get(dag_id), z["dags"].get(dag_id)
            same = "yes" if _ran(zd) and ad is not None and zd["tasks"] == ad["tasks"] else "no"
            lines.append(
                f"| {row['file']} | {dag_id} | {row['unported_lines']} | "
                f"{ad['state'] if ad else (a.get('error') or 'no DAG')[:60]} | "
                f"{zd['state'] if zd else (z.get('error') or 'no DAG')[:80]} | {same} |"
            )
    return "\n".join(["```", json.dumps(summary, indent=1), "```", "", *lines]) + "\n"


if __name__ == "__main__":
    reexec_in_venv(__file__)
    raise SystemExit(main())
