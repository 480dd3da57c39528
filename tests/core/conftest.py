"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path

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
