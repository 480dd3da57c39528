"""Task-log handlers: where the lines of a task attempt go while it runs, and where they are read back from.

``[logging] task_log_handler`` chooses one handler per installation. The task runner wraps every attempt in
:meth:`TaskLogHandler.capture`; ``zonda tasks logs`` (and the UI) call :meth:`TaskLogHandler.read`. Names:

- ``file`` (the default): :class:`FileTaskLogHandler`, one file per attempt under ``[logging]
  base_log_folder``. The name is reserved: it always means the built-in handler, so the default path never
  loads a plugin or reads a provider manifest.
- a name a plugin registers through the ``zonda_task_log_handlers`` hook (``{name: "pkg.module:Class"}``);
  when two plugins register one name, the first in hook order wins.
- a name from an installed provider's manifest ``log_handlers`` list: ``<provider>.<ClassName>`` for each
  class, and the bare ``<provider>`` name when the provider declares exactly one (so ``elasticsearch`` is the
  elasticsearch provider's ``ElasticsearchTaskLogHandler``). A plugin's name wins over a provider's.
- a class path ``package.module:Class``.

The class is imported when a run first needs it (never at ``import zonda``) and cached per process. An unknown
name is a :class:`~zonda.exceptions.ZondaConfigError` that lists the valid names.

Writing a handler: subclass :class:`TaskLogHandler`. It is built once per run (``zonda dags test``) or per
task process (a worker) as ``Handler(settings, log_folder=...)`` and reads any settings of its own from
``settings``. ``capture`` must keep writing the attempt's local file (wrap :func:`capture_attempt_log` and add
your own handlers through its ``extra_handlers``): the file is what ``tasks test``, failure messages and every
fallback read, so a remote store that is down never loses a line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

from zonda.exceptions import TaskLogNotFound, ZondaConfigError
from zonda.runner.logs import attempt_log_path, capture_attempt_log

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.providers.registry import ProvidersRegistry

__all__ = [
    "FILE_HANDLER_NAME",
    "FileTaskLogHandler",
    "TaskLog",
    "TaskLogHandler",
    "TaskLogKey",
    "iter_lines",
    "load_task_log_handler",
    "task_log_handler_class",
    "task_log_handler_paths",
]

log = logging.getLogger("zonda.task_logs")

FILE_HANDLER_NAME = "file"
_FILE_HANDLER_PATH = "zonda.runner.log_handlers:FileTaskLogHandler"


class TaskLogKey(NamedTuple):
    """Which attempt a log belongs to. ``try_number`` counts from 1; ``map_index`` is -1 for unmapped tasks."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1

    @property
    def label(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index} ({self.run_id}, try {self.try_number})"


class TaskLog(NamedTuple):
    """An attempt's lines in the order they were written, and where they were read from (for a reader to
    say, e.g. ``Elasticsearch index 'zonda-task-logs'`` or a file path)."""

    lines: list[str]
    source: str


class TaskLogHandler:
    """Base class of task-log handlers: :meth:`capture` while an attempt runs, :meth:`read` afterwards."""

    #: The name users give in ``[logging] task_log_handler`` (informational; resolution uses the hook or
    #: manifest name).
    name: ClassVar[str] = ""

    def __init__(self, settings: Settings | None = None, *, log_folder: Path | str | None = None) -> None:
        self.settings = settings
        if log_folder is None:
            if settings is None:
                raise ZondaConfigError("a task-log handler needs settings or a log_folder")
            log_folder = settings.log_folder
        self.log_folder = Path(log_folder)

    def local_path(self, key: TaskLogKey) -> Path:
        """The attempt's local file (every handler writes it, see the module docstring)."""
        return attempt_log_path(self.log_folder, key.dag_id, key.run_id, key.task_id, key.map_index, key.try_number)

    def capture(self, key: TaskLogKey, path: Path, *, echo: bool = False) -> contextlib.AbstractContextManager[Path]:
        """Everything the attempt logs or prints inside the ``with`` block goes to ``path`` (and wherever else
        this handler sends it); with ``echo`` also to the console."""
        raise NotImplementedError

    def read(self, key: TaskLogKey) -> TaskLog:
        """The attempt's lines, in order. Raises :class:`~zonda.exceptions.TaskLogNotFound` if there are none."""
        raise NotImplementedError

    def read_local(self, key: TaskLogKey) -> TaskLog:
        """The lines of the attempt's local file (the file handler's read, and every other handler's fallback)."""
        path = self.local_path(key)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise TaskLogNotFound(f"no log for {key.label}: {path} does not exist") from None
        return TaskLog(text.splitlines(), f"local file {path}")


class FileTaskLogHandler(TaskLogHandler):
    """The built-in handler: one file per attempt, nothing else (see :mod:`zonda.runner.logs`)."""

    name = FILE_HANDLER_NAME

    def capture(self, key: TaskLogKey, path: Path, *, echo: bool = False) -> contextlib.AbstractContextManager[Path]:
        return capture_attempt_log(path, echo=echo)

    def read(self, key: TaskLogKey) -> TaskLog:
        return self.read_local(key)


# --- resolution -----------------------------------------------------------------------------------------------

#: Handler classes by dotted path, imported once per process.
_classes: dict[str, type[TaskLogHandler]] = {_FILE_HANDLER_PATH: FileTaskLogHandler}


def task_log_handler_paths(plugins: Any = None, registry: ProvidersRegistry | None = None) -> dict[str, str]:
    """Every handler name known, as ``{name: "pkg.module:Class"}``: the plugins' (hook
    ``zonda_task_log_handlers``), then the installed providers', then the reserved ``file``."""
    paths: dict[str, str] = {}
    if plugins is not None:
        for result in plugins.call("zonda_task_log_handlers"):
            if not isinstance(result, Mapping):
                log.warning("a zonda_task_log_handlers hook returned %r, not a dict of names; ignored", result)
                continue
            for name, path in result.items():
                paths.setdefault(str(name), str(path))
    if registry is None:
        from zonda.providers import get_providers_registry

        registry = get_providers_registry()
    for info in registry.providers.values():
        declared = info.components.get("log_handlers", ())
        for path in declared:
            paths.setdefault(f"{info.name}.{path.rpartition(':')[2]}", path)
        if len(declared) == 1:
            paths.setdefault(info.name, declared[0])
    paths[FILE_HANDLER_NAME] = _FILE_HANDLER_PATH
    return dict(sorted(paths.items()))


def task_log_handler_class(
    name: str, plugins: Any = None, registry: ProvidersRegistry | None = None
) -> type[TaskLogHandler]:
    """The class ``name`` stands for (see the module docstring), imported on first use."""
    name = name.strip()
    if name == FILE_HANDLER_NAME:
        return FileTaskLogHandler
    if ":" in name:
        path = name
    else:
        paths = task_log_handler_paths(plugins, registry)
        found = paths.get(name)
        if found is None:
            raise ZondaConfigError(
                f"unknown task log handler {name!r} in [logging] task_log_handler; use one of "
                f"{', '.join(paths)}, or a class path 'package.module:Class'"
            )
        path = found
    cached = _classes.get(path)
    if cached is not None:
        return cached
    from zonda.providers.registry import ProviderImportError, import_dotted_path

    try:
        cls = import_dotted_path(path)
    except ProviderImportError as exc:
        raise ZondaConfigError(f"cannot load task log handler {name!r}: {exc}") from None
    if not isinstance(cls, type) or not all(callable(getattr(cls, m, None)) for m in ("capture", "read")):
        raise ZondaConfigError(
            f"task log handler {name!r} ({path}) is not a task-log handler class: it needs capture() and read() "
            "(subclass zonda.runner.log_handlers.TaskLogHandler)"
        )
    _classes[path] = cls
    return cast("type[TaskLogHandler]", cls)


def load_task_log_handler(
    settings: Settings | None,
    *,
    plugins: Any = None,
    log_folder: Path | str | None = None,
    registry: ProvidersRegistry | None = None,
) -> TaskLogHandler:
    """The handler ``[logging] task_log_handler`` names, built for ``log_folder`` (default: the settings')."""
    name = str(settings.get("logging", "task_log_handler")) if settings is not None else FILE_HANDLER_NAME
    if name.strip() != FILE_HANDLER_NAME and plugins is None and settings is not None:
        from zonda.plugins.manager import PluginManager

        plugins = PluginManager.from_settings(settings)
    cls = task_log_handler_class(name, plugins, registry)
    return cls(settings, log_folder=log_folder)


def iter_lines(texts: Iterable[str]) -> Iterator[str]:
    """Physical lines of formatted records (a traceback is one record, many lines), as a file holds them."""
    for text in texts:
        yield from text.splitlines() or [""]
