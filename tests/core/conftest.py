"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def home(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ZONDA_HOME with a DAGs folder and no example DAGs: the CLI tests add their DAG files to it
    (``scheduler_helpers.write_dag``) and run commands in-process; new DAGs start unpaused."""
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    # The CLI tests schedule the DAGs they write; a new DAG starting paused has its own tests.
    monkeypatch.setenv("ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION", "false")
    (zonda_home / "dags").mkdir()
    return zonda_home


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def scheduler_setup(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A home and a migrated metastore (SQLite, then PostgreSQL) for tests that run the scheduler's loop in-process:
    ``(home, settings, metastore)``, with a 30-s task heartbeat timeout."""
    import scheduler_helpers as h

    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    settings, metastore = h.configure(zonda_home, monkeypatch, url, {("scheduler", "task_heartbeat_timeout"): 30})
    try:
        yield zonda_home, settings, metastore
    finally:
        metastore.dispose()
