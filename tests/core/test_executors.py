"""Choosing executors: built-ins through the executors hook, class paths, plugin executors, clear errors."""

from __future__ import annotations

import pytest

from zonda import hookimpl
from zonda.config import load_settings
from zonda.exceptions import ZondaConfigError
from zonda.executors import executor_paths, load_executor
from zonda.executors.base import BaseExecutor
from zonda.executors.local import LocalExecutor, SequentialExecutor
from zonda.plugins.manager import PluginManager


class NullExecutor(BaseExecutor):
    name = "NullExecutor"

    def queue(self, workload):  # pragma: no cover - never called here
        raise NotImplementedError

    def poll(self, timeout):  # pragma: no cover
        return []


def test_defaults_follow_the_metastore(zonda_home, monkeypatch) -> None:
    assert isinstance(load_executor(load_settings()), SequentialExecutor)
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "3")
    executor = load_executor(load_settings())
    assert type(executor) is LocalExecutor and executor.parallelism == 3


def test_unknown_executor_lists_the_valid_ones(zonda_home, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "KubernetesExecutorr")
    with pytest.raises(ZondaConfigError) as info:
        load_executor(load_settings())
    message = str(info.value)
    assert "KubernetesExecutorr" in message and "LocalExecutor" in message and "SequentialExecutor" in message


def test_class_path_and_plugin_executors(zonda_home, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", f"{__name__}:NullExecutor")
    assert isinstance(load_executor(load_settings()), NullExecutor)

    class Plugin:
        @hookimpl
        def zonda_executors(self):
            return {"NullExecutor": f"{__name__}:NullExecutor"}

    manager = PluginManager(plugins_folder=None, autoload=False)
    manager.register(Plugin(), "null_executor_plugin")
    assert executor_paths(manager)["NullExecutor"].endswith(":NullExecutor")
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "NullExecutor")
    assert isinstance(load_executor(load_settings(), manager), NullExecutor)


def test_a_bad_class_path_is_a_clear_error(zonda_home, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "no_such_module:Nope")
    with pytest.raises(ZondaConfigError, match="cannot load executor"):
        load_executor(load_settings())


@pytest.mark.postgres
def test_idle_local_executor_workers_hold_no_database_connection(zonda_home, monkeypatch, postgres_url) -> None:
    """Workers connect once to compile the hot statements, then let go: task processes have their own
    connection, and an idle worker holding one would double what the executor asks of max_connections."""
    from sqlalchemy import create_engine, text

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", postgres_url)
    settings = load_settings()
    from zonda.metastore.db import Metastore

    metastore = Metastore.from_settings(settings)
    metastore.init()
    metastore.dispose()
    probe = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))

    def others() -> int:
        with probe.connect() as conn:
            return conn.execute(
                text(
                    "select count(*) from pg_stat_activity where datname = current_database() "
                    "and pid <> pg_backend_pid()"
                )
            ).scalar_one()

    executor = LocalExecutor(parallelism=3, settings=settings)
    try:
        executor.start()  # returns once every worker reported ready (warmed up)
        assert others() == 0
    finally:
        executor.end(timeout=10)
        probe.dispose()
