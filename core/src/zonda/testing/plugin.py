"""pytest fixtures for DAG authors, loaded through the ``pytest11`` entry point ``zonda``.

pytest imports this in every run of a project that has Zonda installed, so it imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.metastore.db import Metastore


@pytest.fixture
def zonda_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$ZONDA_HOME`` (with ``dags/``) for one test; ``ZONDA__*`` variables from outside are cleared."""
    home = tmp_path / "zonda_home"
    (home / "dags").mkdir(parents=True)
    for var in list(os.environ):
        if var.startswith("ZONDA__") or var.startswith("ZONDA_CONN_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ZONDA_HOME", str(home))
    yield home


@pytest.fixture
def zonda_settings(zonda_home: Path) -> Settings:
    from zonda.config import load_settings

    return load_settings(zonda_home)


@pytest.fixture
def zonda_metastore(zonda_settings: Settings) -> Iterator[Metastore]:
    """An initialised SQLite metastore inside the test's ``$ZONDA_HOME``."""
    from zonda.metastore.db import Metastore

    metastore = Metastore.from_settings(zonda_settings)
    metastore.init()
    yield metastore
    metastore.engine.dispose()
