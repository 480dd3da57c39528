"""`zonda standalone` with `core.executor = CeleryExecutor` starts a local `zonda celery worker` beside the
scheduler: a DAG run succeeds end to end on the real Redis and a PostgreSQL metastore, and stopping the standalone
stops the worker too (real processes, loopback only)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ui"))

import scheduler_helpers as h
from standalone_process import ROOT, read_banner, standalone_env, start_standalone, stop_standalone

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BROKER = "redis://127.0.0.1:6379/11"

DAG = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator

with DAG("celery_standalone", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=lambda: print("first"), queue={queue!r})
    second = PythonOperator(task_id="second", python_callable=lambda: print("second"), queue={queue!r})
    first >> second
"""


def test_standalone_runs_a_dag_on_its_local_celery_worker(zonda_home: Path, postgres_url: str) -> None:
    from zonda.metastore.db import Metastore

    queue = f"zs-{uuid.uuid4().hex[:10]}"
    (zonda_home / "dags").mkdir(exist_ok=True)
    (zonda_home / "dags" / "celery_standalone.py").write_text(DAG.format(queue=queue), encoding="utf-8")
    settings = {
        "ZONDA__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        "ZONDA__CORE__EXECUTOR": "CeleryExecutor",
        "ZONDA__CELERY__BROKER_URL": BROKER,
        "ZONDA__CELERY__STANDALONE_WORKER_QUEUES": queue,
        "ZONDA__CELERY__WORKER_LOG_SERVER_HOST": "127.0.0.1",
    }
    out = zonda_home / "standalone.out"
    proc = start_standalone(zonda_home, out, **settings)
    metastore = None
    try:
        banner = read_banner(proc, out)
        assert "executor:  CeleryExecutor" in banner.text, banner.text
        assert "a local Celery worker (pid" in banner.text and f"on queues {queue}" in banner.text, banner.text
        h.wait_for(lambda: " ready." in out.read_text(), 60, what="the local worker ready")
        env = standalone_env(zonda_home, **settings)
        zonda = str(ROOT / ".venv" / "bin" / "zonda")

        def triggered() -> bool:
            for command in (("dags", "unpause", "celery_standalone"), ("dags", "trigger", "celery_standalone")):
                done = subprocess.run([zonda, *command], env=env, capture_output=True, timeout=60, check=False)
                if done.returncode != 0:
                    return False
            return True

        h.wait_for(triggered, 60, interval=0.5, what="the DAG parsed and triggered")
        metastore = Metastore(postgres_url)
        h.wait_for(
            lambda: [r.state for r in h.dag_runs(metastore.engine, "celery_standalone")] == ["success"],
            90,
            interval=0.2,
            what="the run to succeed",
        )
        rows = h.task_instances(metastore.engine, dag_id="celery_standalone")
        assert {(r.task_id, r.state, r.try_number) for r in rows} == {("first", "success", 1), ("second", "success", 1)}
        assert all(r.log_server and r.log_server.startswith("http://127.0.0.1:") for r in rows)
        stop_standalone(proc, out)
        assert h.session_pids(proc.pid) == [], "the local worker outlived the standalone"
        assert "warm shutdown" in out.read_text().lower()
    finally:
        if metastore is not None:
            metastore.dispose()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        from kombu import Connection

        with Connection(BROKER, connect_timeout=5) as conn, contextlib.suppress(Exception):
            conn.default_channel.queue_delete(queue)
