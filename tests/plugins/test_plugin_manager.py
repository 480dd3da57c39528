"""The plugin manager on real plugins: folder modules, entry-point distributions, the example plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

from zonda import DAG, hookimpl
from zonda.cli import main
from zonda.dagbag import DagBag
from zonda.operators import BashOperator, EmptyOperator, PythonOperator
from zonda.plugins.manager import BUILTIN_HOOKS, PluginManager
from zonda.testing import run_dag

REPO = Path(__file__).resolve().parents[2]
EVENTS_SRC = REPO / "plugins" / "zonda-plugin-events" / "src"
GREETING = REPO / "plugins" / "greeting_plugin"


def write_plugin(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def make_distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A real installed distribution (dist-info + modules) that importlib.metadata finds on sys.path."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = ["[zonda.plugins]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, code in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(code))


MARKER_PLUGIN = """
    import os
    from zonda import hookimpl
    open(os.environ["MARKER_FILE"], "a").write("imported\\n")

    @hookimpl
    def on_task_instance_success(task_instance):
        open(os.environ["MARKER_FILE"], "a").write(f"success {task_instance.task_id}\\n")
"""


def test_builtin_hooks_constant_matches_the_builtin_plugin() -> None:
    manager = PluginManager(plugins_folder=None, autoload=False)
    (builtin,) = [r for r in manager.records() if r.source.kind == "builtin"]
    assert set(builtin.hooks) == BUILTIN_HOOKS


def test_folder_plugins_are_lazy_and_listeners_fire(tmp_path, monkeypatch, zonda_home) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER_FILE", str(marker))
    write_plugin(zonda_home / "plugins", "marker_plugin", MARKER_PLUGIN)
    manager = PluginManager(plugins_folder=zonda_home / "plugins", autoload=False)
    assert [s.name for s in manager.sources()] == ["zonda.builtin", "marker_plugin"]
    assert not marker.exists(), "discovery must not import plugins"
    with DAG("lazy", start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    assert run_dag(dag, plugins=manager).succeeded
    assert marker.read_text().splitlines() == ["imported", "success a", "success b"]


def test_version_and_help_import_no_plugin(tmp_path, zonda_home) -> None:
    marker = tmp_path / "marker"
    write_plugin(zonda_home / "plugins", "marker_plugin", MARKER_PLUGIN)
    env = {"ZONDA_HOME": str(zonda_home), "MARKER_FILE": str(marker), "PATH": "/usr/bin:/bin"}
    for args in (["version"], ["--help"], ["config", "get-value", "core", "parallelism"]):
        subprocess.run([sys.executable, "-m", "zonda", *args], env=env, check=True, capture_output=True)
    assert not marker.exists()
    subprocess.run([sys.executable, "-m", "zonda", "plugins", "list"], env=env, check=True, capture_output=True)
    assert marker.read_text() == "imported\n"


def test_lazy_load_plugins_false_loads_at_start(tmp_path, monkeypatch, zonda_home) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER_FILE", str(marker))
    monkeypatch.setenv("ZONDA__CORE__LAZY_LOAD_PLUGINS", "false")
    write_plugin(zonda_home / "plugins", "marker_plugin_at_start", MARKER_PLUGIN)
    from zonda.config import load_settings

    PluginManager.from_settings(load_settings())
    assert marker.read_text() == "imported\n"


def test_invalid_plugins_are_rejected_with_their_name(zonda_home) -> None:
    folder = zonda_home / "plugins"
    write_plugin(
        folder,
        "typo_plugin",
        """
        from zonda import hookimpl

        @hookimpl
        def on_task_instance_sucess(task_instance):
            pass
    """,
    )
    write_plugin(
        folder,
        "bad_args",
        """
        from zonda import hookimpl

        @hookimpl
        def on_task_instance_success(task_instance, nonsense):
            pass
    """,
    )
    write_plugin(folder, "raises_on_import", "raise RuntimeError('broken at import')\n")
    write_plugin(
        folder,
        "good",
        """
        from zonda import hookimpl

        @hookimpl
        def zonda_template_macros():
            return {"answer": 42}
    """,
    )
    manager = PluginManager(plugins_folder=folder, autoload=False)
    records = {r.source.name: r for r in manager.records()}
    assert "on_task_instance_sucess" in records["typo_plugin"].error
    assert "did you mean 'on_task_instance_success'" in records["typo_plugin"].error
    assert "nonsense" in records["bad_args"].error
    assert "broken at import" in records["raises_on_import"].error
    assert records["good"].loaded and records["good"].hooks == ["zonda_template_macros"]
    assert manager.call("zonda_template_macros") == [{"answer": 42}]


def test_a_raising_hook_is_isolated(zonda_home) -> None:
    calls: list[str] = []

    class Broken:
        @hookimpl
        def on_task_instance_success(self, task_instance):
            raise RuntimeError("listener bug")

    class Good:
        @hookimpl
        def on_task_instance_success(self, task_instance):
            calls.append(task_instance.task_id)

    manager = PluginManager(plugins_folder=None, autoload=False)
    manager.register(Broken(), "broken")
    manager.register(Good(), "good")
    with DAG("isolated", start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="t")
    result = run_dag(dag, plugins=manager)
    assert result.states() == {"t": "success"}
    assert calls == ["t"]
    assert [(plugin, hook) for plugin, hook, _ in manager.call_errors] == [("broken", "on_task_instance_success")]


def test_listener_events_in_order_with_retry_and_skip(zonda_home) -> None:
    events: list[tuple] = []

    class Recorder:
        @hookimpl
        def on_dag_run_running(self, dag_run):
            events.append(("run_running", dag_run.dag_id))

        @hookimpl
        def on_dag_run_failed(self, dag_run, msg):
            events.append(("run_failed", msg))

        @hookimpl
        def on_task_instance_running(self, task_instance):
            events.append(("running", task_instance.task_id, task_instance.try_number))

        @hookimpl
        def on_task_instance_success(self, task_instance):
            events.append(("success", task_instance.task_id))

        @hookimpl
        def on_task_instance_failed(self, task_instance, will_retry, error):
            events.append(("failed", task_instance.task_id, will_retry, type(error).__name__))

        @hookimpl
        def on_task_instance_skipped(self, task_instance):
            events.append(("skipped", task_instance.task_id))

    manager = PluginManager(plugins_folder=None, autoload=False)
    manager.register(Recorder(), "recorder")
    with DAG("events", start_date=datetime(2024, 1, 1)) as dag:
        ok = EmptyOperator(task_id="ok")
        bad = PythonOperator(task_id="bad", python_callable=lambda: 1 / 0, retries=1, retry_delay=0)
        after = EmptyOperator(task_id="after")
        ok >> bad >> after
        BashOperator(task_id="skips", bash_command="exit 99")
    run_dag(dag, plugins=manager)
    assert events == [
        ("run_running", "events"),
        ("running", "ok", 1),
        ("success", "ok"),
        ("running", "bad", 1),
        ("failed", "bad", True, "ZeroDivisionError"),
        ("running", "bad", 2),  # retry_delay=0: due at once, and earlier in the DAG than "skips"
        ("failed", "bad", False, "ZeroDivisionError"),
        ("running", "skips", 1),
        ("skipped", "skips"),
        ("run_failed", "task_failure"),
    ]


def test_policies_change_or_reject_dags(zonda_home) -> None:
    folder = zonda_home / "plugins"
    write_plugin(
        folder,
        "policies",
        """
        from zonda import hookimpl

        @hookimpl
        def task_policy(task):
            task.retries = min(task.retries, 1)

        @hookimpl
        def dag_policy(dag):
            if "team" not in " ".join(dag.tags):
                raise ValueError("every DAG needs a team:* tag")
    """,
    )
    dags = zonda_home / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "tagged.py").write_text(
        textwrap.dedent("""
        from datetime import datetime
        from zonda import DAG
        from zonda.operators import EmptyOperator
        with DAG("tagged", start_date=datetime(2024, 1, 1), tags=["team:data"]):
            EmptyOperator(task_id="t", retries=5)
    """)
    )
    (dags / "untagged.py").write_text(
        textwrap.dedent("""
        from datetime import datetime
        from zonda import DAG
        from zonda.operators import EmptyOperator
        with DAG("untagged", start_date=datetime(2024, 1, 1)):
            EmptyOperator(task_id="t")
    """)
    )
    bag = DagBag(dags, plugins=PluginManager(plugins_folder=folder, autoload=False)).collect()
    assert list(bag.dags) == ["tagged"]
    assert bag.dags["tagged"].get_task("t").retries == 1
    (error,) = bag.import_errors.values()
    assert "dag_policy of plugin 'policies'" in error and "team:* tag" in error and "untagged" in error


def test_task_instance_mutation_and_macros(zonda_home) -> None:
    class Plugin:
        @hookimpl
        def task_instance_mutation(self, task_instance):
            task_instance.max_tries = 0

        @hookimpl
        def zonda_template_macros(self):
            return {"shout": lambda s: s.upper() + "!"}

    manager = PluginManager(plugins_folder=None, autoload=False)
    manager.register(Plugin(), "plugin")
    with DAG("macros", start_date=datetime(2024, 1, 1)) as dag:
        BashOperator(task_id="b", bash_command="echo {{ macros.shout('hi') }}", retries=3, retry_delay=0)
        PythonOperator(task_id="f", python_callable=lambda: 1 / 0, retries=3, retry_delay=0)
    result = run_dag(dag, plugins=manager)
    assert "HI!" in result.ti("b").log_path.read_text()
    assert result.ti("f").try_number == 1  # the mutation removed the retries


def test_entry_point_plugins_autoload_and_blocking(tmp_path, monkeypatch, zonda_home) -> None:
    site = tmp_path / "site"
    make_distribution(
        site,
        "zonda-plugin-hello",
        {"hello": "hello_plugin"},
        {
            "hello_plugin": """
        from zonda import hookimpl

        @hookimpl
        def zonda_template_macros():
            return {"hello": "world"}
    """
        },
    )
    monkeypatch.syspath_prepend(str(site))
    found = PluginManager(plugins_folder=None)
    (record,) = [r for r in found.records() if r.source.name == "hello"]
    assert (record.loaded, record.source.version, record.source.distribution) == (True, "1.0", "zonda-plugin-hello")
    disabled = PluginManager(plugins_folder=None, environ={"ZONDA_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "hello" not in [r.source.name for r in disabled.records()]
    explicit = PluginManager(
        plugins_folder=None, environ={"ZONDA_DISABLE_PLUGIN_AUTOLOAD": "1", "ZONDA_PLUGINS": "hello"}
    )
    assert "hello" in [r.source.name for r in explicit.records() if r.loaded]
    blocked = PluginManager(plugins_folder=None, blocked=["zonda-plugin-hello"])
    (record,) = [r for r in blocked.records() if r.source.name == "hello"]
    assert record.blocked and not record.loaded
    assert blocked.call("zonda_template_macros") == []


def test_plugins_list_cli_reports_errors(zonda_home, capsys) -> None:
    write_plugin(zonda_home / "plugins", "raises_on_import", "raise ImportError('no such thing: fancylib')\n")
    assert main(["plugins", "list", "--output", "json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["raises_on_import"]["status"] == "error"
    assert "fancylib" in rows["raises_on_import"]["error"]
    assert rows["zonda.builtin"]["status"] == "loaded"


def test_greeting_example_plugin_and_dag(zonda_home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    (zonda_home / "plugins").mkdir(exist_ok=True)
    (zonda_home / "dags").mkdir(exist_ok=True)
    (zonda_home / "plugins" / "greeting.py").write_text((GREETING / "plugins" / "greeting.py").read_text())
    (zonda_home / "dags" / "example_greeting.py").write_text((GREETING / "dags" / "example_greeting.py").read_text())
    assert main(["dags", "test", "example_greeting", "2024-01-01"]) == 0
    logs = zonda_home / "logs" / "dag_id=example_greeting"
    echo_log = next(logs.rglob("task_id=echo_macro/attempt=1.log")).read_text()
    assert "Hello, data engineers?" in echo_log
    assert "Hello, data engineers!" in next(logs.rglob("task_id=hello/attempt=1.log")).read_text()


def test_events_plugin_module_and_cli_command(zonda_home, monkeypatch, capsys) -> None:
    """The example package's plugin module, registered directly (its pip-installed form is tested in
    tests/integration/test_real_installs.py)."""
    monkeypatch.syspath_prepend(str(EVENTS_SRC))
    import zonda_events.plugin as events_plugin

    manager = PluginManager(plugins_folder=None, autoload=False)
    assert manager.register(events_plugin, "events")
    with DAG("evented", start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="a") >> BashOperator(task_id="b", bash_command="exit 99")
    run_dag(dag, plugins=manager)
    lines = [json.loads(line) for line in (zonda_home / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e.get("task_id")) for e in lines] == [
        ("dag_run_running", None),
        ("task_running", "a"),
        ("task_success", "a"),
        ("task_running", "b"),
        ("task_skipped", "b"),
        ("dag_run_success", None),
    ]
    commands = manager.call("zonda_cli_commands")
    assert [c.name for c in commands[0]] == ["events"]


def test_xcom_backend_from_a_plugin_replaces_the_metastore(zonda_metastore) -> None:
    from sqlalchemy import func, select

    from zonda import task
    from zonda.metastore.tables import xcom
    from zonda.xcom import InMemoryXComBackend

    backend = InMemoryXComBackend()

    class Plugin:
        @hookimpl
        def zonda_xcom_backend(self):
            return backend

    manager = PluginManager(plugins_folder=None, autoload=False)
    manager.register(Plugin(), "xcom_plugin")
    with DAG("xcom_backend", start_date=datetime(2024, 1, 1)) as dag:

        @task
        def produce() -> dict:
            return {"rows": 3}

        @task
        def consume(value: dict) -> int:
            return value["rows"] * 2

        consume(produce())
    result = run_dag(dag, metastore=zonda_metastore, plugins=manager)
    assert result.succeeded
    assert len(backend) == 3  # produce: return_value and "rows" (a -> dict annotation means multiple_outputs)
    with zonda_metastore.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(xcom)).scalar() == 0


def test_the_folder_watch_sees_plugins_added_changed_and_removed(tmp_path) -> None:
    """What a running worker or scheduler compares before a task: every plugin module and package file, but
    not caches, hidden files or what a symlinked folder holds (a link loop cannot make it walk forever)."""
    import os

    from zonda.plugins.manager import FolderChange, PluginFolderWatch

    folder = tmp_path / "plugins"
    watch = PluginFolderWatch(folder)  # not there yet
    assert watch.changes() is None
    write_plugin(folder, "alpha", "A = 1\n")
    package = folder / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    assert watch.changes() == FolderChange(added=("alpha.py", os.path.join("pkg", "__init__.py")))
    assert watch.changes() is None  # reported once

    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "alpha.cpython-311.pyc").write_bytes(b"x")
    (folder / ".hidden.py").write_text("")
    (folder / "notes.txt").write_text("not a module")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    assert watch.changes() is None

    write_plugin(folder, "alpha", "A = 2\n")  # same size: the mtime tells
    stamp = (folder / "alpha.py").stat().st_mtime_ns
    os.utime(folder / "alpha.py", ns=(stamp + 10**9, stamp + 10**9))
    (package / "helpers.py").write_text("B = 1\n")
    change = watch.changes()
    assert change == FolderChange(added=(os.path.join("pkg", "helpers.py"),), changed=("alpha.py",))
    assert str(change) == f"added {os.path.join('pkg', 'helpers.py')}; changed alpha.py"

    (folder / "alpha.py").unlink()
    assert watch.changes() == FolderChange(removed=("alpha.py",))


def test_the_folder_watch_looks_at_most_once_per_interval(tmp_path) -> None:
    """A worker asks before every task; with ``min_interval`` it looks once per interval, and a change made
    between two looks is reported by the first call after the interval, not lost."""
    from zonda.plugins.manager import FolderChange, PluginFolderWatch

    folder = tmp_path / "plugins"
    now = [100.0]
    watch = PluginFolderWatch(folder, min_interval=0.25, clock=lambda: now[0])
    write_plugin(folder, "alpha", "A = 1\n")
    now[0] += 0.1
    assert watch.changes() is None  # too soon: did not look
    now[0] += 0.2
    assert watch.changes() == FolderChange(added=("alpha.py",))  # 0.3 s after the last look: looked
    (folder / "alpha.py").unlink()
    now[0] += 0.1
    assert watch.changes() is None
    now[0] += 10.0  # after an idle spell the next call always looks
    assert watch.changes() == FolderChange(removed=("alpha.py",))
    assert watch.changes() is None


def test_forgetting_the_folder_modules_imports_them_again(tmp_path, zonda_home) -> None:
    import importlib
    import os

    from zonda.plugins.manager import forget_folder_modules

    folder = zonda_home / "plugins"
    path = write_plugin(folder, "reloadable_helper", "VALUE = 1\n")
    sys.path.insert(0, str(folder))
    try:
        assert importlib.import_module("reloadable_helper").VALUE == 1
        path.write_text("VALUE = 22\n")
        stamp = path.stat().st_mtime_ns
        os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
        assert importlib.import_module("reloadable_helper").VALUE == 1  # what a long-lived process keeps
        assert forget_folder_modules(folder) == ["reloadable_helper"]
        assert importlib.import_module("reloadable_helper").VALUE == 22
        assert "json" in sys.modules and forget_folder_modules(None) == []
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("reloadable_helper", None)
