"""Task-log handlers: the interface, the built-in file handler, and how ``[logging] task_log_handler`` resolves
(the reserved ``file``, plugin names from ``zonda_task_log_handlers``, provider manifest names, class paths)."""

from __future__ import annotations

import json
import logging
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from zonda import DAG
from zonda.config import load_settings
from zonda.exceptions import TaskLogNotFound, ZondaConfigError
from zonda.operators import PythonOperator
from zonda.plugins.manager import PluginManager
from zonda.providers import ProvidersRegistry
from zonda.runner.log_handlers import (
    FileTaskLogHandler,
    TaskLogHandler,
    TaskLogKey,
    load_task_log_handler,
    task_log_handler_class,
    task_log_handler_paths,
)
from zonda.testing import run_dag

KEY = TaskLogKey("etl", "extract", "manual__1", -1, 1)


def manifest(name: str, log_handlers: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "package": f"zonda-provider-{name}",
        "version": "1.0",
        "zonda_versions": ">=0.1",
        "log_handlers": log_handlers,
    }


def registry_with(*manifests: dict[str, Any]) -> ProvidersRegistry:
    registry = ProvidersRegistry()
    for item in manifests:
        assert registry.add_manifest(item) is not None, registry.errors
    return registry


class Refusing:
    """Stands in for a plugin manager or a registry that must not be used."""

    def call(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the plugin hook was called")

    @property
    def providers(self) -> Any:
        raise AssertionError("the provider manifests were read")


# --- the file handler ---------------------------------------------------------------------------------------


def test_file_handler_capture_then_read_in_order(tmp_path: Path) -> None:
    handler = FileTaskLogHandler(log_folder=tmp_path)
    path = handler.local_path(KEY)
    assert path == tmp_path / "dag_id=etl" / "run_id=manual__1" / "task_id=extract" / "attempt=1.log"
    with handler.capture(KEY, path) as written:
        assert written == path
        logging.getLogger("zonda.task").info("first")
        print("second")
        logging.getLogger("user.code").warning("third")
        print("unterminated", end="")
    lines = handler.read(KEY).lines
    assert [line.rpartition(": ")[2] for line in lines] == ["first", "second", "third", "unterminated"]
    assert lines[0].startswith("[") and "{INFO} zonda.task: first" in lines[0]
    assert "{WARNING} user.code: third" in lines[2]
    assert handler.read(KEY).source == f"local file {path}"
    assert path.read_text().splitlines() == lines


def test_file_handler_read_of_a_missing_try_is_a_clear_error(tmp_path: Path) -> None:
    handler = FileTaskLogHandler(log_folder=tmp_path)
    with pytest.raises(TaskLogNotFound, match=r"etl\.extract \(manual__1, try 2\).*does not exist"):
        handler.read(KEY._replace(try_number=2))


def test_mapped_key_label_and_path(tmp_path: Path) -> None:
    key = TaskLogKey("etl", "load", "manual__1", 3, 2)
    assert key.label == "etl.load[3] (manual__1, try 2)"
    assert FileTaskLogHandler(log_folder=tmp_path).local_path(key).parts[-2:] == ("map_index=3", "attempt=2.log")


def test_handler_needs_settings_or_a_folder() -> None:
    with pytest.raises(ZondaConfigError, match="settings or a log_folder"):
        FileTaskLogHandler()


def test_file_handler_defaults_to_the_settings_log_folder(zonda_home: Path) -> None:
    handler = load_task_log_handler(load_settings())
    assert type(handler) is FileTaskLogHandler
    assert handler.log_folder == zonda_home / "logs"


# --- resolution ---------------------------------------------------------------------------------------------


def test_file_is_resolved_without_plugins_or_manifests(zonda_home: Path) -> None:
    """The default path stays free: no plugin hook call, no provider discovery."""
    handler = load_task_log_handler(load_settings(), plugins=Refusing(), registry=Refusing())  # type: ignore[arg-type]
    assert type(handler) is FileTaskLogHandler
    assert task_log_handler_class(" file ", Refusing(), Refusing()) is FileTaskLogHandler  # type: ignore[arg-type]


def test_unknown_name_lists_the_valid_ones(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONDA__LOGGING__TASK_LOG_HANDLER", "elasticsearh")
    registry = registry_with(manifest("acme", ["zonda.runner.log_handlers:FileTaskLogHandler"]))
    with pytest.raises(ZondaConfigError) as caught:
        load_task_log_handler(load_settings(), registry=registry)
    message = str(caught.value)
    assert "unknown task log handler 'elasticsearh' in [logging] task_log_handler" in message
    assert "use one of acme, acme.FileTaskLogHandler, file, or a class path 'package.module:Class'" in message


def test_provider_names_bare_when_one_handler_qualified_always() -> None:
    registry = registry_with(
        manifest("solo", ["solo_pkg.logs:SoloHandler"]),
        manifest("duo", ["duo_pkg.logs:FirstHandler", "duo_pkg.other:SecondHandler"]),
    )
    paths = task_log_handler_paths(None, registry)
    assert paths == {
        "duo.FirstHandler": "duo_pkg.logs:FirstHandler",
        "duo.SecondHandler": "duo_pkg.other:SecondHandler",
        "file": "zonda.runner.log_handlers:FileTaskLogHandler",
        "solo": "solo_pkg.logs:SoloHandler",
        "solo.SoloHandler": "solo_pkg.logs:SoloHandler",
    }


def test_provider_handler_is_imported_on_first_use() -> None:
    registry = registry_with(manifest("acme", ["zonda.runner.log_handlers:FileTaskLogHandler"]))
    assert task_log_handler_class("acme", None, registry) is FileTaskLogHandler
    assert task_log_handler_class("acme.FileTaskLogHandler", None, registry) is FileTaskLogHandler


def test_installed_elasticsearch_provider_offers_its_handler() -> None:
    """The real manifest of the workspace's elasticsearch provider, through discovery."""
    paths = task_log_handler_paths(None, ProvidersRegistry.discover())
    assert paths["elasticsearch"] == "zonda_elasticsearch.log_handler:ElasticsearchTaskLogHandler"


def test_class_path_and_its_errors() -> None:
    registry = registry_with()
    assert task_log_handler_class("zonda.runner.log_handlers:FileTaskLogHandler", None, registry) is FileTaskLogHandler
    with pytest.raises(ZondaConfigError, match=r"cannot load task log handler 'no_such_pkg\.mod:Handler'"):
        task_log_handler_class("no_such_pkg.mod:Handler", None, registry)
    with pytest.raises(ZondaConfigError, match="is not a task-log handler class: it needs capture"):
        task_log_handler_class("zonda.runner.logs:attempt_log_path", None, registry)


PLUGIN = """
    import contextlib
    import json

    from zonda import hookimpl
    from zonda.runner.log_handlers import TaskLog, TaskLogHandler
    from zonda.runner.logs import capture_attempt_log

    class JsonLinesHandler(TaskLogHandler):
        '''Keeps the local file and a JSON-lines copy next to it; reads the copy.'''

        def _copy(self, key):
            return self.local_path(key).with_suffix(".jsonl")

        @contextlib.contextmanager
        def capture(self, key, path, *, echo=False):
            import logging

            sink = []
            collector = logging.Handler()
            collector.emit = lambda record: sink.append(
                {"level": record.levelname, "message": record.getMessage()}
            )
            with capture_attempt_log(path, echo=echo, extra_handlers=[collector]):
                yield path
            with path.with_suffix(".jsonl").open("w") as out:
                for row in sink:
                    out.write(json.dumps(row) + "\\n")

        def read(self, key):
            rows = [json.loads(line) for line in self._copy(key).read_text().splitlines()]
            return TaskLog([f"{row['level']} {row['message']}" for row in rows], "jsonl copy")

    @hookimpl
    def zonda_task_log_handlers():
        return {"jsonl": "{module}:JsonLinesHandler", "elasticsearch": "{module}:JsonLinesHandler"}
"""


def write_log_plugin(home: Path, module: str) -> None:
    folder = home / "plugins"
    folder.mkdir(exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(PLUGIN).replace("{module}", module), encoding="utf-8")


def shouting() -> None:
    print("hello from the task")
    logging.getLogger("user").warning("careful")


def test_plugin_handler_from_the_hook_writes_and_reads_a_run(zonda_home: Path, monkeypatch) -> None:
    """A plugins-folder handler chosen by name: the runner captures through it, the local file is kept, and
    ``read`` (what ``zonda tasks logs`` calls) goes through it too."""
    write_log_plugin(zonda_home, "jsonl_log_plugin")
    monkeypatch.setenv("ZONDA__LOGGING__TASK_LOG_HANDLER", "jsonl")
    settings = load_settings()
    plugins = PluginManager.from_settings(settings)
    with DAG("plugged", start_date=datetime(2024, 1, 1), schedule=None) as dag:
        PythonOperator(task_id="shout", python_callable=shouting)
    result = run_dag(dag, "2024-01-02", settings=settings, plugins=plugins)
    assert result.states() == {"shout": "success"}

    handler = load_task_log_handler(settings, plugins=plugins)
    assert type(handler).__name__ == "JsonLinesHandler"
    key = TaskLogKey("plugged", "shout", result.run.run_id, -1, 1)
    task_log = handler.read(key)
    assert task_log.source == "jsonl copy"
    assert task_log.lines[0] == "INFO Starting attempt 1 of 1 for plugged.shout"
    assert task_log.lines[1:3] == ["INFO hello from the task", "WARNING careful"]
    assert task_log.lines[-1].startswith("INFO Attempt ended: success")
    copy = handler.local_path(key).with_suffix(".jsonl")
    assert [json.loads(line)["message"] for line in copy.read_text().splitlines()][1] == "hello from the task"
    assert "hello from the task" in handler.read_local(key).lines[1]  # the local file is still written


def test_plugin_name_wins_over_a_provider_name(zonda_home: Path) -> None:
    write_log_plugin(zonda_home, "shadowing_log_plugin")
    plugins = PluginManager.from_settings(load_settings())
    registry = registry_with(manifest("elasticsearch", ["zonda.runner.log_handlers:FileTaskLogHandler"]))
    cls = task_log_handler_class("elasticsearch", plugins, registry)
    assert cls.__name__ == "JsonLinesHandler"
    assert issubclass(cls, TaskLogHandler)


def test_a_plugin_cannot_shadow_file(zonda_home: Path) -> None:
    folder = zonda_home / "plugins"
    folder.mkdir()
    (folder / "file_thief.py").write_text(
        textwrap.dedent(
            """
            from zonda import hookimpl

            @hookimpl
            def zonda_task_log_handlers():
                return {"file": "nowhere.at.all:Handler", "thief": "nowhere.at.all:Handler"}
            """
        )
    )
    plugins = PluginManager.from_settings(load_settings())
    paths = task_log_handler_paths(plugins, registry_with())
    assert paths == {"file": "zonda.runner.log_handlers:FileTaskLogHandler", "thief": "nowhere.at.all:Handler"}
    assert task_log_handler_class("file", plugins, registry_with()) is FileTaskLogHandler


# --- settings of a handler's own ----------------------------------------------------------------------------


def test_undeclared_keys_read_with_a_default(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (zonda_home / "zonda.toml").write_text('[logging]\nelasticsearch_index = "from-file"\n')
    monkeypatch.setenv("ZONDA__LOGGING__ELASTICSEARCH_CONN_ID", "es_logs")
    settings = load_settings()
    assert settings.get("logging", "elasticsearch_index", default="x") == "from-file"
    assert settings.get("logging", "elasticsearch_conn_id", default="x") == "es_logs"
    assert settings.get("logging", "not_set_anywhere", default=None) is None
    with pytest.raises(ZondaConfigError, match=r"unknown configuration key \[logging\] not_set_anywhere"):
        settings.get("logging", "not_set_anywhere")
    assert settings.get("logging", "task_log_handler", default="ignored") == "file"  # declared: its own default


def test_a_services_console_drops_what_a_running_attempt_logs_but_not_other_threads(tmp_path: Path) -> None:
    """A task process inherits its scheduler's console handler: a library logging inside an attempt (an HTTP or
    Elasticsearch client, say) must land in the attempt's log only, while other threads still reach the console."""
    import io
    import threading

    from zonda.runner.logs import capture_attempt_log
    from zonda.services import _NotTaskRecords

    console = io.StringIO()
    handler = logging.StreamHandler(console)
    handler.addFilter(_NotTaskRecords())
    root = logging.getLogger()
    root.addHandler(handler)
    library = logging.getLogger("some.client.library")
    library.setLevel(logging.INFO)
    path = tmp_path / "attempt=1.log"
    try:
        library.warning("before the attempt")
        with capture_attempt_log(path):
            library.warning("inside the attempt")
            other = threading.Thread(target=lambda: library.warning("another thread meanwhile"))
            other.start()
            other.join()
        library.warning("after the attempt")
    finally:
        root.removeHandler(handler)
        library.setLevel(logging.NOTSET)
    shown = console.getvalue()
    assert "before the attempt" in shown and "after the attempt" in shown and "another thread meanwhile" in shown
    assert "inside the attempt" not in shown
    assert "inside the attempt" in path.read_text()
