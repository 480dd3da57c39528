"""A web app on a fresh SQLite metastore in a temporary ZONDA_HOME, with a logged-in client: what the web
benchmarks (bench_web_*.py) measure requests against. The test client calls the app in process, so the figures
are server time (routing, sessions, queries, rendering) without a network or a browser."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def make_app(home: Path) -> tuple[Any, Any, Any]:
    """(app, metastore, Viewer's logged-in client) for ``home``."""
    from zonda.config import load_settings
    from zonda.metastore.db import Metastore
    from zonda.operations.users import create_user
    from zonda.web import create_app

    os.environ["ZONDA_HOME"] = str(home)
    store = Metastore(f"sqlite:///{home / 'zonda.db'}")
    store.init()
    settings = load_settings(home).with_overrides({("database", "sql_alchemy_conn"): store.url})
    app = create_app(settings, engine=store.engine)
    create_user(store.engine, "viewer", "Viewer", "bench password", actor="(bench)")
    client = app.test_client()
    token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post("/login", data={"username": "viewer", "password": "bench password", "csrf_token": token})
    assert response.status_code == 303, response.status_code
    return app, store, client


def time_request(client: Any, path: str, repeat: int) -> tuple[list[float], Any]:
    """Milliseconds of ``repeat`` GETs of ``path`` (after one warm-up), and the last response."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
    return timings, response


def report(label: str, timings: list[float], goal_ms: float | None = None, extra: str = "") -> None:
    median = statistics.median(timings)
    met = "" if goal_ms is None else f"  goal <= {goal_ms:.0f} ms: {'met' if median <= goal_ms else 'NOT met'}"
    print(f"{label:<48} median {median:7.1f} ms  min {min(timings):7.1f} ms  max {max(timings):7.1f} ms{met}{extra}")


def timed(step: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = action()
    print(f"  ({step}: {time.perf_counter() - started:.1f} s)")
    return result


def store_grid_dag(store: Any, dag_id: str, tasks: int, runs: int) -> None:
    """A DAG of ``tasks`` tasks (task groups of 50, every 100th task mapped over 3, its instances half failed)
    with ``runs`` runs of mostly successful instances: the grid the issue's goals are about."""
    from dag_fixtures import add_runs, store_dag, wide_dag

    dag = wide_dag(dag_id, tasks, group_size=50, mapped_every=100)
    mapped = {task.task_id for task in dag.tasks if getattr(task, "is_mapped", False)}
    store_dag(store, dag)

    def states(run: int, task_id: str) -> tuple[str, ...]:
        if task_id in mapped:
            return ("success", "failed", "success")
        return ("failed",) if (run + len(task_id)) % 17 == 0 else ("success",)

    add_runs(store.engine, dag_id, runs, task_ids=[task.task_id for task in dag.tasks], state_of=states)
