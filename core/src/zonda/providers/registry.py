"""The providers registry: which providers are installed, what they offer, and their classes on first use.

:meth:`ProvidersRegistry.discover` reads the ``zonda.providers`` entry points once (a single scan of the
installed distributions, see :func:`scan_entry_points`: the answer of ``importlib.metadata.entry_points(group=...)``
without that module's import cost), loads each manifest (a dict in a module that imports nothing heavy),
validates it and checks its ``zonda_versions`` against this core. It imports no hook, operator or other
provider class: :meth:`ProvidersRegistry.load_class` does that on first use and caches it on the registry.

A provider whose manifest cannot be loaded, fails validation, does not support this core's version, or clashes
with a provider already registered (same name, same ``conn_type``) is recorded in
:attr:`ProvidersRegistry.errors` and skipped; every other provider still loads. Entry points are processed in
order of entry-point name, so when two providers claim one connection type the outcome does not depend on the
order of ``sys.path`` directory listings: the first by name keeps it and the other is reported.

The registry is an ordinary object (tests build fresh ones); :func:`zonda.providers.get_providers_registry`
caches one per process for the CLI.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from zonda.exceptions import ZondaException
from zonda.providers.manifest import (
    COMPONENT_KINDS,
    ConnectionTypeInfo,
    ProviderInfo,
    normalize_manifest,
    supports_version,
    validate_manifest,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ComponentInfo",
    "HookInfo",
    "ProviderEntryPoint",
    "ProviderError",
    "ProviderImportError",
    "ProvidersRegistry",
    "UnknownConnectionType",
    "import_dotted_path",
    "scan_entry_points",
]

#: The entry-point group providers declare (public API: see SPEC "Plugins and providers").
ENTRY_POINT_GROUP = "zonda.providers"


class ProviderImportError(ZondaException, ImportError):
    """A dotted path from a manifest could not be imported (the provider's code is missing or broken)."""


class UnknownConnectionType(ZondaException, KeyError):
    """No installed provider offers this connection type."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ProviderError(NamedTuple):
    """A provider that was skipped. ``kind`` is ``load`` (the manifest could not be imported or built),
    ``invalid`` (validation problems, including clashes with another provider) or ``incompatible``
    (its ``zonda_versions`` excludes this core)."""

    name: str
    distribution: str
    entry_point: str
    kind: str
    problems: tuple[str, ...]
    traceback: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "entry_point": self.entry_point,
            "kind": self.kind,
            "problems": list(self.problems),
        }


class HookInfo(NamedTuple):
    """A hook class (dotted path) and the connection types it serves."""

    hook: str
    provider: str
    conn_types: tuple[str, ...]


class ComponentInfo(NamedTuple):
    """An operator, sensor, trigger, transfer, log handler or executor class (dotted path) and its provider."""

    path: str
    kind: str
    provider: str


def import_dotted_path(dotted_path: str) -> Any:
    """Import ``"package.module:Attr"`` (``Attr`` may be ``Outer.Inner``) and return the attribute. Uncached:
    use :meth:`ProvidersRegistry.load_class` for manifest classes."""
    module_name, sep, attr_path = dotted_path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ProviderImportError(f"{dotted_path!r} is not a dotted path 'package.module:Class'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderImportError(f"cannot import {dotted_path!r}: {type(exc).__name__}: {exc}") from exc
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ProviderImportError(f"cannot import {dotted_path!r}: {module_name!r} has no {attr_path!r}") from exc
    return obj


_EP_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?")
_DIST_SUFFIXES = (".dist-info", ".egg-info")


class ProviderEntryPoint:
    """One ``zonda.providers`` entry point: ``name = value`` and where its distribution's metadata lives.

    Built by :func:`scan_entry_points`, or wrapped around an ``importlib.metadata.EntryPoint``.
    """

    __slots__ = ("_dist", "_dist_dir", "name", "value")

    def __init__(self, name: str, value: str, dist_dir: str = "", dist: Any = None) -> None:
        self.name = name
        self.value = value
        self._dist_dir = dist_dir
        self._dist = dist

    def load(self) -> Any:
        """The entry point's object, as ``importlib.metadata.EntryPoint.load`` returns it.

        A manifest is data, so a manifest module inside a package that is not imported yet is executed on its
        own, from its file, without importing the package's ``__init__`` (half the imports of discovery, and
        none of the provider's own code). Manifest modules must therefore not use relative imports; anything
        unusual (a namespace package, a zip install) falls back to a normal import.
        """
        match = _EP_VALUE.fullmatch(self.value)
        if match is None:
            raise ValueError(f"entry point value {self.value!r} is not 'module:attr'")
        obj: Any = _load_manifest_module(match["module"])
        if match["attr"]:
            for attr in match["attr"].split("."):
                obj = getattr(obj, attr)
        return obj

    def distribution_name(self) -> str:
        """The distribution's name from its METADATA (read only when a problem is reported)."""
        try:
            if self._dist is not None:
                return self._dist.name or ""
            if self._dist_dir:
                for file_name in ("METADATA", "PKG-INFO"):
                    path = os.path.join(self._dist_dir, file_name)
                    if os.path.isfile(path):
                        with open(path, encoding="utf-8", errors="replace") as fh:
                            for line in fh:
                                if line.startswith("Name:"):
                                    return line[5:].strip()
                                if not line.strip():
                                    break
                return os.path.basename(self._dist_dir).partition("-")[0]
        except Exception:  # a broken METADATA must not hide the problem being reported
            pass
        return ""

    def __repr__(self) -> str:
        return f"ProviderEntryPoint({self.name!r}, {self.value!r})"


def _load_manifest_module(module_name: str) -> Any:
    package, _, leaf = module_name.rpartition(".")
    if not package or "." in package or package in sys.modules or module_name in sys.modules:
        return importlib.import_module(module_name)
    from importlib import machinery, util

    spec = machinery.PathFinder.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = os.path.join(locations[0], f"{leaf}.py") if len(locations) == 1 else ""
    if not path or not os.path.isfile(path):
        return importlib.import_module(module_name)
    key = (path, os.stat(path).st_mtime_ns)
    cached = _STANDALONE_MANIFESTS.get(key)
    if cached is not None:
        return cached
    standalone = util.spec_from_file_location(f"_zonda_manifest_{package}", path)
    if standalone is None or standalone.loader is None:
        return importlib.import_module(module_name)
    module = util.module_from_spec(standalone)
    standalone.loader.exec_module(module)
    _STANDALONE_MANIFESTS[key] = module
    return module


#: Manifest modules executed standalone, by (file, mtime): the same role ``sys.modules`` plays for imports.
_STANDALONE_MANIFESTS: dict[tuple[str, int], Any] = {}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _fast_scan_possible() -> bool:
    from importlib.machinery import PathFinder

    return not any(
        finder is not PathFinder and getattr(finder, "find_distributions", None) is not None for finder in sys.meta_path
    )


def scan_entry_points(group: str = ENTRY_POINT_GROUP, path: list[str] | None = None) -> list[ProviderEntryPoint]:
    """The entry points of ``group`` across the installed distributions, in ``sys.path`` order.

    Same answer as ``importlib.metadata.entry_points(group=group)`` (one distribution per normalized name, the
    first on the path wins), found in one pass over the ``*.dist-info`` / ``*.egg-info`` directories of the
    path's plain directories, reading each ``entry_points.txt`` once and parsing only the ones that mention the
    group. Importing ``importlib.metadata`` alone costs some 30 ms here (email, zipfile, csv...), more than
    discovering 50 providers, so it is used only when this shortcut cannot see everything: a zip file on the
    path, or a meta-path finder that supplies distributions of its own.
    """
    entries = sys.path if path is None else path
    if not _fast_scan_possible():
        return _importlib_entry_points(group)
    header = f"[{group}]"
    seen: set[str] = set()
    found: list[ProviderEntryPoint] = []
    for entry in entries:
        try:
            children = os.scandir(entry or ".")
        except NotADirectoryError:
            if os.path.isfile(entry):  # a zip or egg: importlib.metadata knows how to read inside
                return _importlib_entry_points(group)
            continue
        except OSError:
            continue
        with children:
            for child in children:
                lowered = child.name.lower()
                if not lowered.endswith(_DIST_SUFFIXES):
                    continue
                key = _normalize(lowered.rpartition(".")[0].partition("-")[0])
                if key in seen:
                    continue
                seen.add(key)
                text = _read_text(child.path + os.sep + "entry_points.txt")
                if text is not None and header in text:
                    found.extend(_parse_group(text, group, child.path))
    return found


def _read_text(path: str) -> str | None:
    """A small file's text, or None if absent: ``os.open``/``os.read`` are twice as fast as ``open()`` here,
    which matters when every installed distribution is looked at."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _parse_group(text: str, group: str, dist_dir: str) -> list[ProviderEntryPoint]:
    """The ``name = value`` lines of one section of an entry_points.txt (importlib.metadata's rules)."""
    section = None
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section == group:
            name, _, value = line.partition("=")
            result.append(ProviderEntryPoint(name.strip(), value.strip(), dist_dir))
    return result


def _importlib_entry_points(group: str) -> list[ProviderEntryPoint]:
    from importlib.metadata import entry_points

    return [ProviderEntryPoint(ep.name, ep.value, dist=ep.dist) for ep in entry_points(group=group)]


def _format_exception(exc: BaseException) -> tuple[str, str]:
    import traceback

    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))


class ProvidersRegistry:
    """Installed providers and what they offer, from their manifests. Build one with :meth:`discover`."""

    def __init__(self, core_version: str | None = None) -> None:
        if core_version is None:
            from zonda.version import __version__ as core_version
        self.core_version: str = core_version
        self._providers: dict[str, ProviderInfo] = {}
        self._connection_types: dict[str, ConnectionTypeInfo] = {}
        self._errors: list[ProviderError] = []
        self._classes: dict[str, Any] = {}

    # -- discovery -----------------------------------------------------------------------------------------

    @classmethod
    def discover(cls, *, group: str = ENTRY_POINT_GROUP, core_version: str | None = None) -> ProvidersRegistry:
        """Read every installed provider's manifest (one scan of the entry points; no provider class imported)."""
        registry = cls(core_version)
        for ep in sorted(scan_entry_points(group), key=lambda ep: (ep.name, ep.value)):
            registry.add_entry_point(ep)
        return registry

    def add_entry_point(self, ep: ProviderEntryPoint) -> ProviderInfo | None:
        """Load, validate and register one entry point's manifest; record why if it is skipped."""
        label = f"{ep.name} = {ep.value}"
        try:
            manifest = ep.load()
            if callable(manifest) and not isinstance(manifest, Mapping):
                manifest = manifest()
        except (Exception, SystemExit) as exc:
            problem, tb = _format_exception(exc)
            self._errors.append(ProviderError(ep.name, ep.distribution_name(), label, "load", (problem,), tb))
            return None
        return self.add_manifest(manifest, entry_point=label, name=ep.name, distribution=ep.distribution_name)

    def add_manifest(
        self,
        manifest: Any,
        *,
        entry_point: str = "",
        name: str = "",
        distribution: Any = "",
    ) -> ProviderInfo | None:
        """Validate and register a manifest. ``name`` and ``distribution`` (a string or a callable returning
        one, so the METADATA read happens only for a report) identify it when the manifest cannot."""

        def skip(kind: str, problems: Iterable[str]) -> None:
            provider_name = name
            if isinstance(manifest, Mapping) and isinstance(manifest.get("name"), str):
                provider_name = manifest["name"]
            dist = distribution() if callable(distribution) else distribution
            if not dist and isinstance(manifest, Mapping) and isinstance(manifest.get("package"), str):
                dist = manifest["package"]
            self._errors.append(ProviderError(provider_name, dist, entry_point, kind, tuple(problems)))

        # The version first: a manifest written for another core may use keys this one does not know, and
        # "needs zonda >=2" is the useful report then, not "unknown key".
        version_problem = ""
        spec = manifest.get("zonda_versions") if isinstance(manifest, Mapping) else None
        if isinstance(spec, str) and spec.strip():
            try:
                if not supports_version(spec, self.core_version):
                    skip("incompatible", [f"supports zonda {spec}, this is zonda {self.core_version}"])
                    return None
            except ValueError as exc:
                version_problem = f"zonda_versions: {exc}"
        problems = validate_manifest(manifest)
        if version_problem:
            problems.append(version_problem)
        if problems:
            skip("invalid", problems)
            return None
        info = normalize_manifest(manifest, entry_point)
        clashes = []
        if info.name in self._providers:
            other = self._providers[info.name]
            clashes.append(f"name: provider {info.name!r} is already provided by {other.package} ({other.entry_point})")
        for ct in info.connection_types:
            if ct.conn_type in self._connection_types:
                owner = self._providers[self._connection_types[ct.conn_type].provider]
                clashes.append(
                    f"connection_types: {ct.conn_type!r} is already provided by {owner.name!r} ({owner.package})"
                )
        if clashes:
            skip("invalid", clashes)
            return None
        self._providers[info.name] = info
        for ct in info.connection_types:
            self._connection_types[ct.conn_type] = ct
        return info

    # -- what is installed ---------------------------------------------------------------------------------

    @property
    def providers(self) -> dict[str, ProviderInfo]:
        """Loaded providers by name, sorted by name."""
        return dict(sorted(self._providers.items()))

    @property
    def errors(self) -> list[ProviderError]:
        """Providers that were skipped, in discovery order."""
        return list(self._errors)

    @property
    def connection_types(self) -> dict[str, ConnectionTypeInfo]:
        """Connection types by ``conn_type``, sorted: each has its field schema and hook path."""
        return dict(sorted(self._connection_types.items()))

    def provider(self, name: str) -> ProviderInfo:
        try:
            return self._providers[name]
        except KeyError:
            raise ZondaException(
                f"no provider named {name!r} is installed (installed: {', '.join(sorted(self._providers)) or 'none'})"
            ) from None

    def connection_type(self, conn_type: str) -> ConnectionTypeInfo:
        try:
            return self._connection_types[conn_type]
        except KeyError:
            known = ", ".join(sorted(self._connection_types)) or "none"
            raise UnknownConnectionType(
                f"no installed provider offers connection type {conn_type!r} (known: {known})"
            ) from None

    @property
    def hooks(self) -> list[HookInfo]:
        """Every hook class: those listed under ``hooks`` and those named by a connection type, sorted."""
        found: dict[str, tuple[str, list[str]]] = {}
        for info in self._providers.values():
            for path in info.components["hooks"]:
                found.setdefault(path, (info.name, []))
            for ct in info.connection_types:
                found.setdefault(ct.hook, (info.name, []))[1].append(ct.conn_type)
        return [HookInfo(path, provider, tuple(cts)) for path, (provider, cts) in sorted(found.items())]

    def components(self, *kinds: str) -> list[ComponentInfo]:
        """Classes of the given kinds (``operators``, ``sensors``... default: all but hooks), sorted by path."""
        for kind in kinds:
            if kind not in COMPONENT_KINDS:
                raise ValueError(f"unknown component kind {kind!r} (expected one of {', '.join(COMPONENT_KINDS)})")
        kinds = kinds or tuple(k for k in COMPONENT_KINDS if k != "hooks")
        rows = [
            ComponentInfo(path, kind, info.name)
            for info in self._providers.values()
            for kind in kinds
            for path in info.components[kind]
        ]
        return sorted(rows, key=lambda row: (row.path, row.kind))

    @property
    def operators(self) -> list[ComponentInfo]:
        """Operators, sensors and transfers (a sensor or a transfer is an operator too)."""
        return self.components("operators", "sensors", "transfers")

    def provider_for(self, dotted_path: str) -> ProviderInfo | None:
        """The provider whose manifest declares ``dotted_path`` (None if none does)."""
        for info in self._providers.values():
            if any(dotted_path in paths for paths in info.components.values()):
                return info
            if any(ct.hook == dotted_path for ct in info.connection_types):
                return info
        return None

    # -- classes on first use ------------------------------------------------------------------------------

    def load_class(self, dotted_path: str) -> Any:
        """Import ``dotted_path`` the first time it is asked for and return the cached object afterwards."""
        try:
            return self._classes[dotted_path]
        except KeyError:
            pass
        try:
            obj = import_dotted_path(dotted_path)
        except ProviderImportError as exc:
            provider = self.provider_for(dotted_path)
            if provider is None:
                raise
            raise ProviderImportError(f"{exc} (declared by provider {provider.name!r}, {provider.package})") from exc
        self._classes[dotted_path] = obj
        return obj

    def hook_class_for(self, conn_type: str) -> Any:
        """The hook class for a connection type, imported on first use."""
        return self.load_class(self.connection_type(conn_type).hook)

    def secret_extras_for(self, conn_type: str) -> tuple[str, ...]:
        """Extra keys the connection type marks secret (``()`` for an unknown type): fits
        ``ConnectionLookup(secret_fields_for=registry.secret_extras_for)``."""
        info = self._connection_types.get(conn_type)
        return info.secret_extras if info is not None else ()

    def loaded_classes(self) -> dict[str, Any]:
        """Dotted paths imported so far through this registry."""
        return dict(self._classes)

    def __repr__(self) -> str:
        return f"<ProvidersRegistry {len(self._providers)} providers, {len(self._errors)} errors>"
