"""Logs from anywhere: two `zonda celery worker` processes with homes of their own (sharing only the broker and
the PostgreSQL metastore) run a DAG; the scheduler's side, a third home with no log files, reads every try's log
with `zonda tasks logs`, fetched from the worker that ran it over its signed log server (real processes, real
Redis, loopback only)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

import scheduler_helpers as h

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BROKER = "redis://127.0.0.1:6379/11"
SECRET = "worker-logs-test-" + "k" * 32

DAG = """
import os
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    print("ran %s in home %s" % (context["ti"].task_id, os.path.basename(os.environ["ZONDA_HOME"])))


with DAG("celery_logs", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=work, queue={q1!r})
    left = PythonOperator(task_id="left", python_callable=work, queue={q1!r})
    right = PythonOperator(task_id="right", python_callable=work, queue={q2!r})
    last = PythonOperator(task_id="last", python_callable=work, queue={q2!r})
    first >> [left, right] >> last
"""


@pytest.fixture
def setup(zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    suffix = uuid.uuid4().hex[:10]
    queues = (f"zl-{suffix}-a", f"zl-{suffix}-b")
    options = {
        ("celery", "broker_url"): BROKER,
        ("core", "executor"): "CeleryExecutor",
        ("webserver", "secret_key"): SECRET,
        ("celery", "worker_log_server_host"): "127.0.0.1",
        ("celery", "worker_log_server_port"): 0,
    }
    with h.LedgerSetup(zonda_home, postgres_url, monkeypatch, options) as installation:
        installation.dag("celery_logs.py", DAG.format(q1=queues[0], q2=queues[1]))
        installation.store()
        installation.queues = queues
        try:
            yield installation
        finally:
            from kombu import Connection

            with Connection(BROKER, connect_timeout=5) as conn:
                for queue in queues:
                    with contextlib.suppress(Exception):
                        conn.default_channel.queue_delete(queue)


def _start_worker(setup: Any, started: list[h.SchedulerProcess], home: Path, queue: str) -> h.SchedulerProcess:
    """A worker whose home holds only the DAG file: its own settings, log folder and secret-key-by-config."""
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "celery_logs.py").write_bytes((setup.home / "dags" / "celery_logs.py").read_bytes())
    env = h.subprocess_env(home, setup.url, setup.options)
    argv = [sys.executable, "-m", "zonda", "celery", "worker", "-q", queue, "-c", "1", "--hostname", home.name]
    process = h.start_process(argv, env, home.parent / f"{home.name}.log", cwd=home)
    started.append(process)
    h.wait_for(lambda: " ready." in process.output() or process.proc.poll() is not None, 60, what="worker ready")
    assert process.proc.poll() is None, process.output()
    return process


def test_every_tasks_log_is_readable_on_the_schedulers_side(setup: Any, tmp_path: Path) -> None:
    from zonda.scheduler.scheduler import Scheduler
    from zonda_celery.executor import CeleryExecutor

    with h.scheduler_processes() as started:
        _start_worker(setup, started, tmp_path / "worker_one", setup.queues[0])
        _start_worker(setup, started, tmp_path / "worker_two", setup.queues[1])
        run_id = setup.trigger("celery_logs")
        executor = CeleryExecutor(parallelism=8, settings=setup.settings)
        scheduler = Scheduler(setup.settings, executor=executor, metastore=setup.metastore)
        states = h.drive(scheduler, [run_id], 90)
        assert states == {run_id: "success"}, h.states_by_task(setup.engine, run_id)
        rows = {r.task_id: r for r in h.task_instances(setup.engine, run_id)}
        servers = {task_id: row.log_server for task_id, row in rows.items()}
        assert servers["first"] == servers["left"] != servers["right"] == servers["last"], servers
        assert all(s and s.startswith("http://127.0.0.1:") for s in servers.values()), servers
        assert all(row.hostname for row in rows.values())
        assert not list((setup.home / "logs").rglob("attempt=*.log"))  # nothing local on the scheduler's side
        run = h.dag_runs(setup.engine, "celery_logs")[0]
        for task_id, home in (("first", "one"), ("left", "one"), ("right", "two"), ("last", "two")):
            shown = subprocess.run(
                [sys.executable, "-m", "zonda", "tasks", "logs", "celery_logs", task_id, run.run_id],
                env=h.subprocess_env(setup.home, setup.url, setup.options),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert shown.returncode == 0, shown.stderr
            assert f"ran {task_id} in home worker_{home}" in shown.stdout, shown.stdout
            assert f"from worker log server {servers[task_id]}" in shown.stderr, shown.stderr
        _read_through_the_web(setup, run.run_id)


def _read_through_the_web(setup: Any, run_id: str) -> None:
    """The REST API and the task page's log view read the same logs, through the same operation."""
    import re
    from urllib.parse import quote

    from zonda.operations.users import create_user
    from zonda.web import create_app

    create_user(setup.engine, "viewer", "Viewer", "correct horse battery staple", actor="(test)")
    app = create_app(setup.settings, engine=setup.engine)
    app.config["TESTING"] = True
    client = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert csrf, "no login form"
    form = {"username": "viewer", "password": "correct horse battery staple", "csrf_token": csrf.group(1)}
    assert client.post("/login", data=form).status_code == 303
    run = quote(run_id, safe="")
    api = client.get(
        f"/api/v1/dags/celery_logs/dagRuns/{run}/taskInstances/right/logs/1", headers={"Accept": "text/plain"}
    )
    assert api.status_code == 200 and "ran right in home worker_two" in api.text, api.text
    page = client.get(f"/dags/celery_logs/runs/{run}/tasks/first/logs/1").get_json()
    assert any("ran first in home worker_one" in line for line in page["lines"]), page
    assert page["source"].startswith("worker log server http://127.0.0.1:"), page
