#!/usr/bin/env python3
"""Zonda's CeleryExecutor end to end (real scheduler, two real workers, Redis, PostgreSQL), beside Airflow 3.3.2's.

usage: python3 bench/bench_celery.py [--tasks 1000] [--workers 2] [--concurrency 4] [--no-airflow] [--keep]

For each system: a fresh PostgreSQL database, a DAG of ``--tasks`` independent no-op PythonOperator tasks on a
queue of the run's own, ``--workers`` Celery workers (``--concurrency`` task processes each) and the scheduler, each
a process group of its own, on the shared Redis (database 12; the queue is deleted afterwards, Redis is never
flushed). One run is triggered once everything is up; the figures come from the metastore's timestamps and
``/proc``:

* tasks/s end to end = succeeded tasks / (last success's end - the run's ``queued_at``);
* queue -> start delay = ``task_instance.start_date - queued_dttm`` (median and p95): the broker hand-over, the
  worker taking the message and starting the task process, the task marking itself running;
* scheduler CPU per task = (user + system CPU of the scheduler process during the run) / tasks. Zonda's
  ``zonda scheduler`` process also holds its DAG processor (idle once the file is parsed); Airflow's
  dag-processor and api-server are separate processes and not counted.

Airflow runs with its api-server (the workers' task processes report through its execution API), dag-processor,
scheduler and ``airflow celery worker`` processes, when ``apache-airflow-providers-celery`` is installed in
``--airflow-venv``. Prints figures; asserts nothing. See bench/README.md ("Celery").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _venv import VENV, VENV_PY, reexec_in_venv

reexec_in_venv(__file__)  # SQLAlchemy, psycopg and zonda for the trigger and the timestamps

from sqlalchemy import create_engine, text  # noqa: E402

#: The PostgreSQL server the databases are made on (``--private-postgres`` replaces it with one of the run's own).
PG_BASE = "postgresql://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/12"
DAG_ID = "bench_celery_noop"
CLK_TCK = os.sysconf("SC_CLK_TCK")

DAG_HEADER = {
    "zonda": "from zonda import DAG\nfrom zonda.operators import PythonOperator\n",
    "airflow": "from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.python import PythonOperator\n",
}
DAG_BODY = """
from datetime import datetime


def noop():
    return None


with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, max_active_tasks={tasks}):
    for i in range({tasks}):
        PythonOperator(task_id=f"n{{i:04d}}", python_callable=noop, queue={queue!r})
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Figures:
    system: str
    tasks: int
    succeeded: int
    tasks_per_s: float
    delay_median_ms: float
    delay_p95_ms: float
    scheduler_cpu_ms_per_task: float
    wall_s: float


# --- processes and databases -------------------------------------------------------------------------------------


def start(argv: list[str], env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("ab") as handle:
        return subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (its own threads; not its children)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def private_postgres(work: Path, max_connections: int) -> Iterator[str]:
    """A PostgreSQL server of the benchmark's own (initdb as the ``postgres`` user, a free port, trust on
    loopback), so the shared server's connection limit, which other sessions' tests also use, is not the
    benchmark's bottleneck. Stopped and deleted afterwards."""
    import pwd
    import socket

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise SystemExit("--private-postgres needs PostgreSQL's initdb and pg_ctl on PATH")
    data = work / "pgdata"
    data.mkdir()
    owner = pwd.getpwnam("postgres")
    os.chown(work, owner.pw_uid, owner.pw_gid)
    os.chown(data, owner.pw_uid, owner.pw_gid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def as_postgres(*argv: str) -> None:
        subprocess.run(["su", "postgres", "-c", " ".join(argv)], check=True, capture_output=True)

    as_postgres(initdb, "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -c max_connections={max_connections} -c listen_addresses=127.0.0.1 -k {work}"
    as_postgres(pg_ctl, "-D", str(data), "-w", "-l", str(work / "pg.log"), "-o", f"'{options}'", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        as_postgres(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(name: str) -> Iterator[str]:
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def delete_queue(queue: str) -> None:
    from kombu import Connection

    with Connection(BROKER, connect_timeout=5) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(queue)


def write_home(work: Path, system: str, tasks: int) -> tuple[Path, str]:
    """``work/<system>_home/dags/`` holding the no-op DAG on a queue of its own; the home and the queue."""
    queue = f"{system[:2]}-{uuid.uuid4().hex[:8]}"
    home = work / f"{system}_home"
    (home / "dags").mkdir(parents=True)
    source = DAG_HEADER[system] + DAG_BODY.format(dag_id=DAG_ID, tasks=tasks, queue=queue)
    (home / "dags" / f"{DAG_ID}.py").write_text(source, encoding="utf-8")
    return home, queue


def dag_stored(engine: Any) -> bool:
    """Whether the DAG processor has stored the DAG (both systems keep it in ``serialized_dag``)."""
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT 1 FROM serialized_dag WHERE dag_id = :d"), {"d": DAG_ID}).first())


def wait_until_settled(engine: Any, ended: Callable[[], bool], stall: float) -> None:
    """Until the run ends, or no task instance has changed for ``stall`` seconds (an instance stuck in
    ``queued`` is then counted as not done, and shown in the report, instead of hanging the benchmark)."""
    last, changed = None, time.monotonic()
    deadline = time.monotonic() + 3600
    while not ended() and time.monotonic() < deadline:
        with engine.connect() as conn:
            now = conn.execute(text("SELECT state, count(*) FROM task_instance GROUP BY state ORDER BY 1")).all()
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > stall:
            log(f"no task instance changed for {stall:.0f} s; stopping the wait with {dict(map(tuple, now))}")
            return
        time.sleep(0.5)


def measure(
    system: str, engine_url: str, tasks: int, scheduler_pid: int, trigger: Callable[[], None], args_stall: float
) -> Figures:
    """Trigger the run, wait for it to end, and read its figures from the metastore."""
    engine = create_engine(engine_url)
    try:
        cpu_before, wall_before = cpu_seconds(scheduler_pid), time.monotonic()
        trigger()

        def ended() -> bool:
            with engine.connect() as conn:
                state = conn.execute(text("SELECT state FROM dag_run WHERE dag_id = :d"), {"d": DAG_ID}).scalar()
            return state in ("success", "failed")

        wait_until_settled(engine, ended, args_stall)
        cpu = cpu_seconds(scheduler_pid) - cpu_before
        wall = time.monotonic() - wall_before
        with engine.connect() as conn:
            queued_at = conn.execute(text("SELECT queued_at FROM dag_run WHERE dag_id = :d"), {"d": DAG_ID}).scalar()
            rows = conn.execute(
                text("SELECT state, queued_dttm, start_date, end_date FROM task_instance WHERE dag_id = :d"),
                {"d": DAG_ID},
            ).all()
    finally:
        engine.dispose()
    delays = sorted(
        (r.start_date - r.queued_dttm).total_seconds() * 1000 for r in rows if r.start_date and r.queued_dttm
    )
    ended_rows = [r for r in rows if r.state == "success" and r.end_date]
    span = (max(r.end_date for r in ended_rows) - queued_at).total_seconds()
    return Figures(
        system=system,
        tasks=tasks,
        succeeded=sum(r.state == "success" for r in rows),
        tasks_per_s=len(ended_rows) / span,
        delay_median_ms=statistics.median(delays),
        delay_p95_ms=delays[int(0.95 * (len(delays) - 1))],
        scheduler_cpu_ms_per_task=cpu * 1000 / tasks,
        wall_s=wall,
    )


# --- Zonda ------------------------------------------------------------------------------------------------------


def bench_zonda(args: argparse.Namespace, work: Path) -> Figures:
    from zonda.metastore.db import Metastore

    home, queue = write_home(work, "zonda", args.tasks)
    processes: list[subprocess.Popen[bytes]] = []
    with fresh_database("zonda_bench_celery") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA")}
        env.update(
            ZONDA_HOME=str(home),
            ZONDA__DATABASE__SQL_ALCHEMY_CONN=url,
            ZONDA__CORE__EXECUTOR="CeleryExecutor",
            ZONDA__CORE__LOAD_EXAMPLES="false",
            ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",  # the benchmark triggers its DAGs
            ZONDA__CORE__PARALLELISM=str(args.parallelism),
            ZONDA__CELERY__BROKER_URL=BROKER,
            ZONDA__CELERY__WORKER_LOG_SERVER_HOST="127.0.0.1",
            ZONDA__WEBSERVER__SECRET_KEY="bench-celery-" + uuid.uuid4().hex + uuid.uuid4().hex,
            PYTHONUNBUFFERED="1",
        )
        metastore = Metastore(url)
        metastore.init()
        zonda = str(VENV / "bin" / "zonda")
        try:
            for number in range(args.workers):
                argv = [zonda, "celery", "worker", "-q", queue, "-c", str(args.concurrency)]
                worker = start([*argv, "--hostname", f"bench{number}@%h"], env, work / f"zonda_worker{number}.log")
                processes.append(worker)
            for number in range(args.workers):
                log_file = work / f"zonda_worker{number}.log"
                wait_for(lambda f=log_file: " ready." in f.read_text(errors="replace"), 120, f"worker {number}")
            scheduler = start([zonda, "scheduler"], env, work / "zonda_scheduler.log")
            processes.append(scheduler)

            wait_for(lambda: dag_stored(metastore.engine), 300, "the DAG stored by the DAG processor")
            time.sleep(2)
            log(f"zonda: {args.workers} workers x {args.concurrency}, scheduler pid {scheduler.pid}; triggering")

            def trigger() -> None:
                from zonda.scheduler.runs import trigger_dag

                with contextlib.suppress(Exception):
                    subprocess.run([zonda, "dags", "unpause", DAG_ID], env=env, capture_output=True, check=False)
                trigger_dag(metastore.engine, DAG_ID)

            return measure("Zonda", url, args.tasks, scheduler.pid, trigger, args.stall)
        finally:
            for proc in reversed(processes):
                stop_group(proc)
            metastore.dispose()
            delete_queue(queue)


# --- Airflow ----------------------------------------------------------------------------------------------------


def airflow_has_celery(venv: Path) -> bool:
    probe = [str(venv / "bin" / "python"), "-c", "import airflow.providers.celery"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def bench_airflow(args: argparse.Namespace, work: Path) -> Figures:
    home, queue = write_home(work, "airflow", args.tasks)
    airflow = str(args.airflow_venv / "bin" / "airflow")
    processes: list[subprocess.Popen[bytes]] = []
    port = 18000 + os.getpid() % 1000
    secret = "bench-celery-" + uuid.uuid4().hex
    with fresh_database("airflow_bench_celery") as url:
        psycopg2_url = url.replace("postgresql://", "postgresql+psycopg2://")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ZONDA"))}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__PARALLELISM=str(args.parallelism),
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(args.tasks),
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=psycopg2_url,
            AIRFLOW__CELERY__BROKER_URL=BROKER,
            AIRFLOW__CELERY__RESULT_BACKEND="db+" + psycopg2_url,
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(args.concurrency),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=secret,
            AIRFLOW__API__SECRET_KEY=secret,
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if migrate.returncode != 0:
            raise SystemExit(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
        engine = create_engine(url)
        try:
            processes.append(start([airflow, "api-server", "--workers", "1"], env, work / "af_api.log"))
            processes.append(start([airflow, "dag-processor"], env, work / "af_dag_processor.log"))
            for number in range(args.workers):
                argv = [airflow, "celery", "worker", "-q", queue, "-c", str(args.concurrency)]
                worker_log = work / f"af_worker{number}.log"
                processes.append(start([*argv, "--celery-hostname", f"afbench{number}@%h"], env, worker_log))
            scheduler = start([airflow, "scheduler"], env, work / "af_scheduler.log")
            processes.append(scheduler)

            wait_for(lambda: dag_stored(engine), 600, "Airflow's dag-processor to store the DAG")
            for number in range(args.workers):
                worker_log = work / f"af_worker{number}.log"
                wait_for(
                    lambda f=worker_log: " ready." in f.read_text(errors="replace"), 180, f"airflow worker {number}"
                )
            time.sleep(5)
            log(f"airflow: {args.workers} workers x {args.concurrency}, scheduler pid {scheduler.pid}; triggering")

            def trigger() -> None:
                done = subprocess.run([airflow, "dags", "trigger", DAG_ID], env=env, capture_output=True, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"airflow dags trigger failed: {done.stderr[-2000:]!r}")

            return measure("Airflow 3.3.2", url, args.tasks, scheduler.pid, trigger, args.stall)
        finally:
            for proc in reversed(processes):
                stop_group(proc)
            engine.dispose()
            delete_queue(queue)


# --- report -------------------------------------------------------------------------------------------------------


def report(figures: list[Figures], args: argparse.Namespace) -> None:
    print(
        f"\n{args.tasks} no-op tasks, {args.workers} Celery workers x {args.concurrency}, parallelism "
        f"{args.parallelism}, Redis broker, PostgreSQL metastore, {os.cpu_count()} cores (shared)"
    )
    print(f"{'system':<14} {'ok':>6} {'tasks/s':>8} {'q->start med':>13} {'p95':>9} {'sched CPU/task':>15} {'wall':>8}")
    for f in figures:
        print(
            f"{f.system:<14} {f.succeeded:>6} {f.tasks_per_s:>8.1f} {f.delay_median_ms:>10.0f} ms "
            f"{f.delay_p95_ms:>6.0f} ms {f.scheduler_cpu_ms_per_task:>12.1f} ms {f.wall_s:>6.0f} s"
        )


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(f"interrupted by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="task processes per worker")
    parser.add_argument("--parallelism", type=int, default=32)
    parser.add_argument("--no-airflow", action="store_true")
    parser.add_argument("--no-zonda", action="store_true")
    parser.add_argument("--airflow-venv", type=Path, default=Path("/tmp/peers/airflow"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs of every process)")
    parser.add_argument(
        "--private-postgres",
        type=int,
        metavar="MAX_CONNECTIONS",
        default=None,
        help="run on a PostgreSQL server of the benchmark's own with this many connections (the shared one allows 100)",
    )
    parser.add_argument("--stall", type=float, default=120.0, help="give up after this long without progress (s)")
    args = parser.parse_args()
    # SIGTERM (and SIGINT, which a background job ignores) unwind through the finally blocks: every process
    # group started is stopped and every database dropped.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    work = Path(tempfile.mkdtemp(prefix="bench_celery_"))
    log(f"work folder {work} (python {VENV_PY})")
    figures: list[Figures] = []
    stack = contextlib.ExitStack()
    try:
        if args.private_postgres:
            global PG_BASE
            PG_BASE = stack.enter_context(private_postgres(work, args.private_postgres))
            log(f"private PostgreSQL at {PG_BASE}")
        if not args.no_zonda:
            figures.append(bench_zonda(args, work))
            report(figures, args)
        if not args.no_airflow:
            if airflow_has_celery(args.airflow_venv):
                figures.append(bench_airflow(args, work))
            else:
                log(f"Airflow skipped: apache-airflow-providers-celery is not installed in {args.airflow_venv}")
        report(figures, args)
    finally:
        stack.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
