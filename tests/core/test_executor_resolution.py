"""Executors resolve from one place (built-ins, plugins, providers' manifests, class paths) and are treated by
the capabilities they declare, never by their class.

The provider executor is a real installed distribution (``<name>-1.0.dist-info`` with an ``entry_points.txt``
on ``sys.path``, found by ``importlib.metadata`` as a pip-installed one is), and it is a real executor: it runs
each workload as a ``zonda tasks execute`` subprocess, as a Celery worker would, through the real scheduler.
"""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda import hookimpl
from zonda.config import load_settings
from zonda.exceptions import ZondaConfigError
from zonda.executors.base import BaseExecutor, ExecutorCapabilities
from zonda.executors.local import LocalExecutor, SequentialExecutor
from zonda.executors.resolution import known_executors, load_executor, resolve_executor
from zonda.plugins.manager import PluginManager
from zonda.providers import ProvidersRegistry, get_providers_registry

PROVIDER = "tqueue"
PACKAGE = f"zonda_{PROVIDER}"

#: The provider's executor: one `zonda tasks execute` subprocess per workload (the Celery shape, on loopback).
SUBPROCESS_EXECUTOR = """
import os
import subprocess
import sys
import time

from zonda.executors.base import BaseExecutor, ExecutorCapabilities, TaskEvent
from zonda.executors.workload_schema import encode_workload


class SubprocessExecutor(BaseExecutor):
    name = "SubprocessExecutor"
    capabilities = ExecutorCapabilities(keeps_warm_processes=False, supports_sqlite=True, max_parallelism=2)

    def __init__(self, parallelism=32, settings=None):
        super().__init__(parallelism, settings)
        self.procs = {}
        self.started = []

    def queue(self, workload):
        text = encode_workload(workload, self.settings).to_json()
        proc = subprocess.Popen(
            [sys.executable, "-m", "zonda", "tasks", "execute", "--workload", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )
        proc.stdin.write(text)
        proc.stdin.close()
        self.running[workload.key] = workload
        self.procs[workload.key] = (proc, workload)
        self.started.append(workload.key)

    def poll(self, timeout):
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            events = []
            for key, (proc, workload) in list(self.procs.items()):
                code = proc.poll()
                if code is not None:
                    del self.procs[key]
                    self.running.pop(key, None)
                    events.append(TaskEvent(workload, code))
            if events or time.monotonic() >= deadline:
                return events
            time.sleep(0.02)

    def end(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        for proc, _ in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def terminate(self):
        for proc, _ in self.procs.values():
            proc.kill()
            proc.wait()
"""

NOT_AN_EXECUTOR = """
class Nope:
    pass
"""


def _manifest(executors: list[str]) -> dict[str, Any]:
    return {
        "name": PROVIDER,
        "package": f"zonda-provider-{PROVIDER}",
        "version": "1.0",
        "zonda_versions": ">=0.1,<1",
        "executors": executors,
    }


@pytest.fixture
def provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Install the distribution ``zonda-provider-tqueue`` into a temp site on ``sys.path``."""
    root = tmp_path / "site"
    package = root / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "executors.py").write_text(textwrap.dedent(SUBPROCESS_EXECUTOR))
    (package / "broken.py").write_text(NOT_AN_EXECUTOR)
    executors = [f"{PACKAGE}.executors:SubprocessExecutor", f"{PACKAGE}.broken:Nope"]
    (package / "manifest.py").write_text(f"manifest = {_manifest(executors)!r}\n")
    info = root / f"zonda_provider_{PROVIDER}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zonda-provider-{PROVIDER}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zonda.providers]\n{PROVIDER} = {PACKAGE}.manifest:manifest\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    get_providers_registry.cache_clear()
    yield root
    get_providers_registry.cache_clear()
    for name in list(sys.modules):
        if name.startswith(PACKAGE):
            del sys.modules[name]


class NullExecutor(BaseExecutor):
    name = "NullExecutor"
    capabilities = ExecutorCapabilities(supports_sqlite=True)

    def queue(self, workload: Any) -> None:  # pragma: no cover - never called here
        raise NotImplementedError

    def poll(self, timeout: float) -> list:  # pragma: no cover
        return []


class RemoteOnlyExecutor(NullExecutor):
    """Declares the defaults: workers elsewhere, so no SQLite."""

    name = "RemoteOnlyExecutor"
    capabilities = ExecutorCapabilities()


class WarmExecutor(NullExecutor):
    """Not a LocalExecutor, but keeps warm processes: the connection check applies to it by its declaration."""

    name = "WarmExecutor"
    capabilities = ExecutorCapabilities(keeps_warm_processes=True, supports_sqlite=True)


def _plugins(mapping: dict[str, str]) -> PluginManager:
    class Plugin:
        @hookimpl
        def zonda_executors(self) -> dict[str, str]:
            return mapping

    manager = PluginManager(plugins_folder=None, autoload=False)
    manager.register(Plugin(), "executors_plugin")
    return manager


# --- resolution ---------------------------------------------------------------------------------------------------


def test_a_provider_manifest_executor_is_known_without_import_and_loads_by_name(provider: Path) -> None:
    registry = ProvidersRegistry.discover()
    known = known_executors(PluginManager(plugins_folder=None, autoload=False), registry)
    assert known["SubprocessExecutor"].path == f"{PACKAGE}.executors:SubprocessExecutor"
    assert known["SubprocessExecutor"].source == f"provider {PROVIDER}"
    assert known[f"{PROVIDER}.SubprocessExecutor"].path == known["SubprocessExecutor"].path
    assert known["LocalExecutor"].source == "built-in"
    assert f"{PACKAGE}.executors" not in sys.modules  # listing names imports nothing
    for name in ("SubprocessExecutor", f"{PROVIDER}.SubprocessExecutor"):
        _, cls = resolve_executor(name, PluginManager(plugins_folder=None, autoload=False), registry)
        assert cls.__name__ == "SubprocessExecutor" and cls.__module__ == f"{PACKAGE}.executors"
    assert f"{PACKAGE}.broken" not in sys.modules  # only the chosen one was imported


def test_a_provider_entry_that_is_not_an_executor_is_a_clear_error(provider: Path) -> None:
    with pytest.raises(ZondaConfigError) as info:
        resolve_executor("Nope", PluginManager(plugins_folder=None, autoload=False), ProvidersRegistry.discover())
    message = str(info.value)
    assert "is not an executor class" in message and f"provider {PROVIDER}" in message and "BaseExecutor" in message


def test_a_plugin_executor_and_reserved_built_in_names() -> None:
    manager = _plugins({"NullExecutor": f"{__name__}:NullExecutor", "LocalExecutor": f"{__name__}:NullExecutor"})
    known = known_executors(manager, ProvidersRegistry())
    assert known["NullExecutor"].source == "plugin"
    assert known["LocalExecutor"].path == "zonda.executors.local:LocalExecutor"  # a plugin cannot redirect it
    assert resolve_executor("NullExecutor", manager, ProvidersRegistry())[1] is NullExecutor
    assert resolve_executor("LocalExecutor", manager, ProvidersRegistry())[1] is LocalExecutor


@pytest.mark.parametrize("form", [f"{__name__}:NullExecutor", f"{__name__}.NullExecutor"])
def test_class_paths_in_both_forms(form: str, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", form)
    executor = load_executor(load_settings(), PluginManager(plugins_folder=None, autoload=False), ProvidersRegistry())
    assert type(executor) is NullExecutor


def test_an_unknown_name_lists_the_known_ones_and_the_likely_one(zonda_home: Path, monkeypatch) -> None:
    manager = _plugins({"NullExecutor": f"{__name__}:NullExecutor"})
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "LocalExecuter")
    with pytest.raises(ZondaConfigError) as info:
        load_executor(load_settings(), manager, ProvidersRegistry())
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown executor 'LocalExecuter' in [core] executor; did you mean 'LocalExecutor'")
    assert "Known executors: LocalExecutor, NullExecutor, SequentialExecutor;" in message
    assert "class path 'package.module:Class'" in message
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "no spaces allowed")
    with pytest.raises(ZondaConfigError, match="unknown executor 'no spaces allowed'"):
        load_executor(load_settings(), manager, ProvidersRegistry())


def test_a_missing_module_in_a_class_path_is_a_clear_error(zonda_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "no_such_module.Executor")
    with pytest.raises(ZondaConfigError, match=r"cannot load executor 'no_such_module\.Executor' \(class path\)"):
        load_executor(load_settings(), PluginManager(plugins_folder=None, autoload=False), ProvidersRegistry())


def test_built_ins_resolve_without_loading_plugins_or_providers(zonda_home: Path, monkeypatch) -> None:
    """The common case stays cheap: a plugin folder with a plugin is not imported to choose LocalExecutor."""
    folder = zonda_home / "plugins"
    folder.mkdir()
    (folder / "loud_plugin.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "LocalExecutor")
    manager = PluginManager(plugins_folder=folder, autoload=False)
    assert type(load_executor(load_settings(), manager)) is LocalExecutor
    assert not manager.loaded


# --- capabilities -------------------------------------------------------------------------------------------------


def test_no_module_outside_the_executors_checks_an_executor_class() -> None:
    """The scheduler and the services ask capabilities: nothing outside ``zonda.executors`` imports a built-in
    executor class or calls isinstance/issubclass with an executor class."""
    import ast

    src = Path(__file__).resolve().parents[2] / "core" / "src" / "zonda"
    offenders = []
    for path in sorted(src.rglob("*.py")):
        if path.is_relative_to(src / "executors"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "zonda.executors.local":
                offenders.append(f"{path.relative_to(src)}:{node.lineno} imports zonda.executors.local")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass")
                and len(node.args) == 2
                and "Executor" in ast.unparse(node.args[1])
            ):
                offenders.append(f"{path.relative_to(src)}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []


def test_max_parallelism_caps_core_parallelism(zonda_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "8")
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "SequentialExecutor")
    assert load_executor(load_settings()).parallelism == 1
    assert SequentialExecutor.capabilities.max_parallelism == 1
    assert LocalExecutor.capabilities.keeps_warm_processes and LocalExecutor.capabilities.supports_sqlite


def test_an_executor_without_sqlite_support_is_refused_on_sqlite(zonda_home: Path, monkeypatch) -> None:
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        scheduler = Scheduler(settings, executor=RemoteOnlyExecutor(settings=settings), metastore=metastore)
        with pytest.raises(ZondaConfigError) as info:
            scheduler.start()
        message = str(info.value)
        assert "\n" not in message
        assert "RemoteOnlyExecutor cannot use a SQLite metastore" in message and "PostgreSQL" in message
        assert scheduler.job_id is None  # refused before anything was recorded
    finally:
        metastore.dispose()


@pytest.mark.postgres
def test_the_connection_check_follows_keeps_warm_processes(
    zonda_home: Path, monkeypatch, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from zonda.metastore.db import Metastore
    from zonda.scheduler.scheduler import Scheduler

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", postgres_url)
    settings = load_settings()
    metastore = Metastore.from_settings(settings)
    try:
        warm = Scheduler(settings, executor=WarmExecutor(parallelism=5000, settings=settings), metastore=metastore)
        with caplog.at_level(logging.WARNING, logger="zonda.scheduler"):
            warm._warn_about_connections()
        assert "this scheduler (WarmExecutor) may open up to 5007 database connections" in caplog.text
        caplog.clear()
        remote = Scheduler(settings, executor=NullExecutor(parallelism=5000, settings=settings), metastore=metastore)
        with caplog.at_level(logging.WARNING, logger="zonda.scheduler"):
            remote._warn_about_connections()
        assert "database connections" not in caplog.text
    finally:
        metastore.dispose()


DAG = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context)


with DAG("remote_dag", schedule=None, start_date=datetime(2024, 1, 1)):
    first = PythonOperator(task_id="first", python_callable=work)
    for i in range(2):
        first >> PythonOperator(task_id=f"mid{i}", python_callable=work)
"""


@pytest.mark.parametrize("url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_provider_executor_runs_a_dag_through_the_real_scheduler(
    provider: Path, zonda_home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, url: str
) -> None:
    """``[core] executor = SubprocessExecutor`` (a provider's manifest name): the scheduler loads it by name,
    caps it at its max_parallelism, and every task runs once, in a `zonda tasks execute` process."""
    import os

    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    db = None if url == "sqlite" else request.getfixturevalue("postgres_url")
    options = {("core", "executor"): "SubprocessExecutor", ("core", "parallelism"): 8}
    settings, metastore = h.configure(zonda_home, monkeypatch, db, options)
    ledger = zonda_home / "ledger.txt"
    h.write_dag(zonda_home, "remote_dag.py", DAG, ledger=ledger)
    try:
        h.store_dags(settings, metastore)
        run_id = int(trigger_dag(metastore.engine, "remote_dag")["id"])
        scheduler = Scheduler(settings, metastore=metastore)
        executor = scheduler.executor
        assert type(executor).__module__ == f"{PACKAGE}.executors" and executor.parallelism == 2
        assert h.drive(scheduler, [run_id], timeout=90) == {run_id: "success"}
        entries = h.read_ledger(ledger)
        assert sorted(e.task_id for e in entries) == ["first", "mid0", "mid1"]
        assert not h.duplicates(entries, "end")
        assert os.getpid() not in {e.pid for e in entries}  # each ran in its own `zonda tasks execute` process
        assert len(executor.started) == 3
        rows = h.task_instances(metastore.engine, run_id)
        assert {(r.state, r.try_number) for r in rows} == {("success", 1)}
    finally:
        metastore.dispose()
