"""``zonda scheduler`` and ``zonda standalone`` run the scheduler loop the tests run (``Scheduler.run``), not a
copy of it: ``services.run_scheduler`` starts the other services around that loop and calls it."""

from __future__ import annotations

import ast
import inspect
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h


def _calls(function: object) -> set[str]:
    tree = ast.parse(inspect.getsource(function))  # type: ignore[arg-type]
    return {
        node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_the_services_call_the_schedulers_own_loop() -> None:
    from zonda import services

    calls = _calls(services.run_scheduler)
    assert "run" in calls
    # A pass called from here would be a second loop, without the loop's guards.
    assert "run_once" not in _calls(services)
    loops = [
        node for node in ast.walk(ast.parse(inspect.getsource(services.run_scheduler))) if isinstance(node, ast.While)
    ]
    assert not loops


def test_run_scheduler_runs_passes_stops_and_ends_its_job(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop, as ``zonda scheduler --num-runs 3`` runs it: three passes, the DAG processor beside it, then the
    scheduler job is ended and the services are joined."""
    from sqlalchemy import select

    from zonda.metastore import tables as t
    from zonda.services import run_scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None, {("core", "executor"): "SequentialExecutor"})
    seen: list[object] = []
    try:
        report = run_scheduler(settings, max_passes=3, on_started=seen.append, join_timeout=10)
        with metastore.engine.connect() as conn:
            jobs = conn.execute(select(t.job.c.state, t.job.c.job_type)).all()
    finally:
        metastore.dispose()
    assert report.passes == 3
    assert not report.abandoned
    assert len(seen) == 1 and seen[0].stop.is_set()  # type: ignore[attr-defined]
    assert [job.state for job in jobs if job.job_type == "scheduler"] == ["success"]
    assert not [th for th in threading.enumerate() if th.name.startswith("zonda-dag-processor")]
