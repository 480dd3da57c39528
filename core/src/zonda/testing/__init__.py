"""Test helpers for DAG authors, also registered as a pytest plugin (``pytest11`` entry point ``zonda``).

    from zonda.testing import run_dag

    def test_my_pipeline(zonda_home):
        result = run_dag(my_dag, "2024-01-01")
        assert result.states() == {"extract": "success", "load": "success"}

``run_dag`` runs a DAG in this process exactly as ``zonda dags test`` does. By default it keeps state in
memory; pass ``metastore=`` (or use the ``zonda_metastore`` fixture) to record it in a real metastore.
The pytest fixtures live in :mod:`zonda.testing.plugin`, so this module does not need pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG
    from zonda.metastore.db import Metastore
    from zonda.runner.dag_runner import DagRunResult


def run_dag(
    dag: DAG,
    logical_date: datetime | str | None = None,
    *,
    conf: Mapping[str, Any] | None = None,
    metastore: Metastore | None = None,
    settings: Settings | None = None,
    log_folder: Path | str | None = None,
    plugins: Any = None,
) -> DagRunResult:
    """Run every task of ``dag`` once, in dependency order, and return the run with its task instances."""
    from zonda.config import load_settings
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.store import MemoryRunStore, MetastoreRunStore
    from zonda.timezone import coerce_datetime

    settings = settings or load_settings()
    store = MetastoreRunStore(metastore) if metastore is not None else MemoryRunStore()
    runner = InProcessDagRunner(
        dag,
        store,
        settings=settings,
        log_folder=Path(log_folder) if log_folder is not None else settings.log_folder,
        xcom_max_size=int(settings.get("xcom", "max_size")),
        plugins=plugins,
    )
    return runner.run(coerce_datetime(logical_date), conf=conf)


def run_task(dag: DAG, task_id: str, logical_date: datetime | str | None = None, **kwargs: Any) -> Any:
    """Run one task alone, recording nothing (``zonda tasks test``); returns its state, XComs and log."""
    from zonda.config import load_settings
    from zonda.runner.single_task import test_task
    from zonda.timezone import coerce_datetime

    return test_task(dag, task_id, coerce_datetime(logical_date), settings=load_settings(), **kwargs)
