"""Finding, loading and calling plugins.

Plugins come from three places, in this order: Zonda's built-ins (:mod:`zonda.plugins.builtin`), modules and
packages in ``$ZONDA_HOME/plugins/``, and the entry-point group ``zonda.plugins``. Discovery (:meth:`sources`)
only reads metadata and folder listings; nothing is imported until a hook is first needed (or at start-up when
``core.lazy_load_plugins = false``).

A plugin that fails to import, fails validation or raises inside a hook is recorded with its traceback and
logged; everything else keeps working. ``ZONDA_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry-point plugins except the
names listed in ``ZONDA_PLUGINS``, and ``core.blocked_plugins`` blocks plugins by name — as pytest's
``PYTEST_DISABLE_PLUGIN_AUTOLOAD``, ``PYTEST_PLUGINS`` and ``-p no:name`` do.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

    from zonda.config import Settings

log = logging.getLogger("zonda.plugins")

ENTRY_POINT_GROUP = "zonda.plugins"
BUILTIN_NAME = "zonda.builtin"
#: Hooks :mod:`zonda.plugins.builtin` implements (a test keeps this in sync).
BUILTIN_HOOKS = frozenset({"zonda_executors", "zonda_task_log_handlers"})


@dataclass
class PluginSource:
    """Where a plugin comes from, known without importing it."""

    name: str
    kind: str  # "builtin" | "folder" | "entry_point" | "object"
    location: str
    version: str = ""
    distribution: str = ""


@dataclass
class PluginRecord:
    source: PluginSource
    loaded: bool = False
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    blocked: bool = False

    def as_row(self) -> dict[str, Any]:
        return {
            "name": self.source.name,
            "source": f"{self.source.kind}: {self.source.location}",
            "version": self.source.version,
            "hooks": self.hooks,
            "status": "blocked"
            if self.blocked
            else ("error" if self.error else ("loaded" if self.loaded else "not loaded")),
            "error": self.error,
        }


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """Zonda's plugin manager: a pluggy manager plus discovery, laziness, validation and isolation."""

    def __init__(
        self,
        *,
        plugins_folder: Path | str | None = None,
        blocked: list[str] | tuple[str, ...] = (),
        autoload: bool | None = None,
        environ: Mapping[str, str] | None = None,
        include_builtin: bool = True,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.plugins_folder = Path(plugins_folder) if plugins_folder else None
        self.blocked = {b.strip() for b in blocked if b.strip()}
        self.autoload = not _truthy(environ.get("ZONDA_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
        self.explicit = [p.strip() for p in environ.get("ZONDA_PLUGINS", "").split(",") if p.strip()]
        self.include_builtin = include_builtin
        self._pm: pluggy.PluginManager | None = None
        self._records: dict[str, PluginRecord] = {}
        self._loaded = False
        self.call_errors: list[tuple[str, str, str]] = []
        self._only_builtin_cache: bool | None = None
        self._extra_registered = False

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> PluginManager:
        blocked = settings.get("core", "blocked_plugins")
        manager = cls(plugins_folder=settings.plugins_folder, blocked=list(blocked or []), **kwargs)
        if not settings.get("core", "lazy_load_plugins"):
            manager.load()
        return manager

    # --- discovery (no imports) ------------------------------------------------------------------------

    def sources(self) -> list[PluginSource]:
        found: list[PluginSource] = []
        if self.include_builtin:
            found.append(PluginSource(BUILTIN_NAME, "builtin", "zonda.plugins.builtin"))
        found.extend(self._folder_sources())
        found.extend(self._entry_point_sources())
        return found

    def _folder_sources(self) -> Iterator[PluginSource]:
        folder = self.plugins_folder
        if folder is None or not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.is_file() and path.suffix == ".py":
                yield PluginSource(path.stem, "folder", str(path))
            elif path.is_dir() and (path / "__init__.py").exists():
                yield PluginSource(path.name, "folder", str(path))

    def _entry_point_sources(self) -> Iterator[PluginSource]:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if not self.autoload and ep.name not in self.explicit:
                continue
            dist = getattr(ep, "dist", None)
            yield PluginSource(
                ep.name,
                "entry_point",
                ep.value,
                version=getattr(dist, "version", "") or "",
                distribution=(dist.metadata["Name"] if dist is not None else ""),
            )
        for name in self.explicit:
            if ":" not in name and "." in name:
                yield PluginSource(name, "entry_point", name)

    # --- loading ----------------------------------------------------------------------------------------

    @property
    def pluggy(self) -> pluggy.PluginManager:
        if self._pm is None:
            import pluggy

            from zonda.plugins import hookspecs

            pm = pluggy.PluginManager("zonda")
            pm.add_hookspecs(hookspecs)
            self._pm = pm
        return self._pm

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> PluginManager:
        """Import and register every discovered plugin (once). Failures are recorded, never raised."""
        if self._loaded:
            return self
        self._loaded = True
        if self.plugins_folder is not None and self.plugins_folder.is_dir():
            ensure_on_path(self.plugins_folder)
        for source in self.sources():
            record = self._records.setdefault(source.name, PluginRecord(source))
            names = {source.name, source.distribution}
            if names & self.blocked:
                record.blocked = True
                continue
            try:
                plugin = self._import(source)
            except BaseException as exc:  # a plugin must not stop Zonda, whatever it raises on import
                if isinstance(exc, KeyboardInterrupt):
                    raise
                record.error = _format(exc)
                log.error(
                    "plugin %r (%s %s) failed to load:\n%s", source.name, source.kind, source.location, record.error
                )
                continue
            self._register(plugin, record)
        return self

    def _import(self, source: PluginSource) -> Any:
        if source.kind == "builtin":
            return importlib.import_module(source.location)
        if source.kind == "folder":
            return _import_file(source.name, Path(source.location))
        if ":" in source.location:
            module_name, _, attr = source.location.partition(":")
            target: Any = importlib.import_module(module_name.strip())
            for part in attr.strip().split("."):
                target = getattr(target, part)
            return target() if isinstance(target, type) else target
        return importlib.import_module(source.location)

    def register(self, plugin: Any, name: str, *, kind: str = "object") -> bool:
        """Register an already-imported plugin object (tests, embedding). Returns False if it was rejected."""
        self.load()
        self._extra_registered = True
        record = self._records.setdefault(name, PluginRecord(PluginSource(name, kind, repr(plugin))))
        if name in self.blocked:
            record.blocked = True
            return False
        return self._register(plugin, record)

    def _register(self, plugin: Any, record: PluginRecord) -> bool:
        import pluggy

        pm = self.pluggy
        name = record.source.name
        try:
            pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            record.error = f"invalid plugin: {exc}"
            log.error("plugin %r rejected: %s", name, exc)
            return False
        problems = []
        hooks = []
        for caller in pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                problems.append(f"{caller.name!r} is not a Zonda hook")
            else:
                hooks.append(caller.name)
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and (impl.hookwrapper or getattr(impl, "wrapper", False)):
                    problems.append(f"{caller.name!r}: hook wrappers are not supported")
        if problems:
            pm.unregister(plugin)
            from zonda.plugins import hookspecs
            from zonda.suggestions import did_you_mean

            known = [n for n in dir(hookspecs) if n.startswith(("on_", "zonda_")) or n.endswith(("policy", "mutation"))]
            hints = []
            for problem in problems:
                hint = did_you_mean(problem.split("'")[1], known, limit=1)
                hints.append(problem + (f" ({hint})" if hint else ""))
            record.error = "invalid plugin: " + "; ".join(hints)
            log.error("plugin %r rejected: %s", name, record.error)
            return False
        record.loaded = True
        record.hooks = sorted(hooks)
        return True

    def make_folder_importable(self) -> None:
        """Put the plugins folder on ``sys.path`` without importing anything (DAG files import from it)."""
        if self.plugins_folder is not None and self.plugins_folder.is_dir():
            ensure_on_path(self.plugins_folder)

    # --- calling ----------------------------------------------------------------------------------------

    def _only_builtin(self) -> bool:
        """True when nothing but Zonda's built-ins is installed: listener calls then cost nothing at all
        (not even importing pluggy), which keeps plugin support free for users without plugins."""
        if self._only_builtin_cache is None:
            self._only_builtin_cache = not self.include_builtin or all(s.kind == "builtin" for s in self.sources())
        return self._only_builtin_cache and not self._extra_registered

    def has_implementations(self, hook_name: str) -> bool:
        if self._only_builtin() and hook_name not in BUILTIN_HOOKS:
            return False
        self.load()
        return bool(getattr(self.pluggy.hook, hook_name).get_hookimpls())

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of ``hook_name`` (pluggy's order); one that raises is logged and skipped."""
        return [result for _plugin, result in self.call_by_plugin(hook_name, **kwargs)]

    def call_by_plugin(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """As :meth:`call`, each result paired with the name of the plugin that gave it (for errors naming it)."""
        if self._only_builtin() and hook_name not in BUILTIN_HOOKS:
            return []
        self.load()
        caller = getattr(self.pluggy.hook, hook_name)
        results = []
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                text = _format(exc)
                self.call_errors.append((impl.plugin_name, hook_name, text))
                log.error("plugin %r raised in hook %s; ignoring it:\n%s", impl.plugin_name, hook_name, text)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """The first non-None result (for ``firstresult`` hooks), isolated like :meth:`call`."""
        if self._only_builtin() and hook_name not in BUILTIN_HOOKS:
            return None
        self.load()
        caller = getattr(self.pluggy.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                text = _format(exc)
                self.call_errors.append((impl.plugin_name, hook_name, text))
                log.error("plugin %r raised in hook %s; ignoring it:\n%s", impl.plugin_name, hook_name, text)
                continue
            if result is not None:
                return result
        return None

    def call_policy(self, hook_name: str, **kwargs: Any) -> None:
        """Policies may reject: an exception propagates, naming the plugin, so the caller can refuse the DAG."""
        from zonda.exceptions import PolicyViolation

        if self._only_builtin() and hook_name not in BUILTIN_HOOKS:
            return
        self.load()
        caller = getattr(self.pluggy.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                raise PolicyViolation(f"{hook_name} of plugin {impl.plugin_name!r} rejected it: {exc}") from exc

    # --- reporting --------------------------------------------------------------------------------------

    def records(self) -> list[PluginRecord]:
        self.load()
        return list(self._records.values())

    def errors(self) -> list[PluginRecord]:
        return [r for r in self.records() if r.error]


#: At most this many plugin files are watched for changes (a folder holding more is not a plugins folder).
MAX_WATCHED_FILES = 2000


def folder_fingerprint(folder: Path | None) -> dict[str, tuple[int, int]]:
    """``(mtime_ns, size)`` of every ``.py`` file under the plugins folder, by path relative to it: only
    directory listings and ``stat`` calls, no reads, so looking before every task costs microseconds."""
    found: dict[str, tuple[int, int]] = {}
    if folder is None or not folder.is_dir():
        return found
    prefix = len(os.path.join(str(folder), ""))
    for dirpath, dirnames, filenames in os.walk(folder):  # symlinked folders are not followed: no loops
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for filename in sorted(filenames):
            if not filename.endswith(".py") or filename.startswith("."):
                continue
            path = os.path.join(dirpath, filename)
            try:
                stat = os.stat(path)
            except OSError:  # removed meanwhile, or a dangling link
                continue
            found[path[prefix:]] = (stat.st_mtime_ns, stat.st_size)
            if len(found) >= MAX_WATCHED_FILES:
                return found
    return found


@dataclass(frozen=True)
class FolderChange:
    """Plugin files added, changed and removed, as paths relative to the plugins folder."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [f"{what} {', '.join(names)}" for what, names in self._parts() if names]
        return "; ".join(parts)

    def _parts(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("added", self.added), ("changed", self.changed), ("removed", self.removed)]


class PluginFolderWatch:
    """Notices plugin files added, changed or removed in the plugins folder since the last look.

    Long-lived processes import plugins once; this tells them when what they imported is no longer what is
    on disk (a worker then reloads for its next task; a scheduler says a restart is needed).

    ``min_interval``: seconds between two looks; a call sooner says None without looking. A worker asks before
    every task, and a busy one starts hundreds a second: a change is then seen by the first task that starts
    ``min_interval`` after the last look, while a task after an idle spell always looks."""

    def __init__(
        self, folder: Path | None, *, min_interval: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.folder = folder
        self.min_interval = min_interval
        self._clock = clock
        self._seen = folder_fingerprint(folder)
        self._looked = clock()

    def changes(self) -> FolderChange | None:
        """What changed since the last look (or since this watch was made); None when nothing did, or when the
        last look was less than ``min_interval`` ago."""
        now = self._clock()
        if self.min_interval > 0 and now - self._looked < self.min_interval:
            return None
        self._looked = now
        fingerprint = folder_fingerprint(self.folder)
        if fingerprint == self._seen:
            return None
        before, self._seen = self._seen, fingerprint
        return FolderChange(
            added=tuple(sorted(set(fingerprint) - set(before))),
            changed=tuple(sorted(k for k in fingerprint.keys() & before.keys() if fingerprint[k] != before[k])),
            removed=tuple(sorted(set(before) - set(fingerprint))),
        )


def forget_folder_modules(folder: Path | None) -> list[str]:
    """Drop from ``sys.modules`` every module imported from the plugins folder, so the next import of a
    plugin (or of a helper module beside it) reads the file again; the names dropped."""
    if folder is None:
        return []
    root = os.path.realpath(folder) + os.sep
    dropped = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if origin and os.path.realpath(origin).startswith(root):
            del sys.modules[name]
            dropped.append(name)
    importlib.invalidate_caches()  # a file added since the last import is found
    return dropped


def _import_file(name: str, path: Path) -> Any:
    """Import a plugins-folder module or package from exactly this path, under its plain name (so DAG files
    importing it by name get the same module)."""
    import importlib.util

    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() in (
        path.resolve(),
        (path / "__init__.py").resolve(),
    ):
        return existing
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin {name!r} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def ensure_on_path(folder: Path) -> None:
    """Make modules in the plugins folder importable (DAG files may import operators defined there)."""
    text = str(folder)
    if text not in sys.path:
        sys.path.append(text)


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()
