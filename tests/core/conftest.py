"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ZONDA_HOME with a DAGs folder and no example DAGs: the CLI tests add their DAG files to it
    (``scheduler_helpers.write_dag``) and run commands in-process."""
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    (zonda_home / "dags").mkdir()
    return zonda_home
