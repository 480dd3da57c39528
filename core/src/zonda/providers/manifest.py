"""Provider manifests: what one looks like, how it is validated, and whether it supports this core.

A provider declares the entry point group ``zonda.providers``; its target is a *manifest*, a plain ``dict`` of
names and dotted paths (``"package.module:Class"``), so discovery never has to import provider code::

    manifest = {
        "name": "http",                          # required, the provider's short name
        "package": "zonda-provider-http",        # required, the distribution that ships it
        "version": "0.1.0",                      # required
        "description": "HTTP hooks and operators",
        "zonda_versions": ">=0.1,<1",            # required, a PEP 440 specifier over the core version
        "connection_types": [
            {
                "conn_type": "http",                       # required, unique across all providers
                "hook": "zonda_http.hooks.http:HttpHook",  # required, dotted path
                "display_name": "HTTP",
                "fields": {                                # host, port, schema, login, password, extra.<name>
                    "password": {"label": "Password", "type": "password", "secret": True},
                    "extra.timeout": {"type": "integer", "default": 30, "help": "Seconds"},
                },
            }
        ],
        "hooks": [...], "operators": [...], "sensors": [...], "triggers": [...],
        "transfers": [...], "log_handlers": [...], "executors": [...],   # lists of dotted paths
    }

A field spec takes ``label``, ``type`` (``string`` | ``integer`` | ``boolean`` | ``password`` | ``json``, default
``string``), ``secret`` (default true for the ``password`` field and ``password``-typed fields, else false),
``default``, ``help`` and ``placeholder``. Unknown keys anywhere are problems, not silently ignored: a typo such
as ``"secert": True`` would otherwise leave a secret unmasked. The entry point may also name a callable that
returns the dict (as Airflow's ``get_provider_info``); it is called once, at discovery.

:func:`validate_manifest` returns *every* problem it finds, each prefixed with where it is, so a provider author
fixes them in one go. :func:`supports_version` answers the ``zonda_versions`` question; it evaluates plain
release versions itself (exact PEP 440 semantics for those, and no 6 ms ``packaging`` import on the CLI's
start-up path) and hands anything else (pre-releases, local versions, ``===``) to ``packaging`` when installed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "COMPONENT_KINDS",
    "FIELD_TYPES",
    "STANDARD_FIELDS",
    "ConnectionField",
    "ConnectionTypeInfo",
    "ProviderInfo",
    "is_dotted_path",
    "normalize_manifest",
    "supports_version",
    "validate_manifest",
]

#: Manifest keys that list dotted paths, in the order listings show them.
COMPONENT_KINDS: tuple[str, ...] = (
    "hooks",
    "operators",
    "sensors",
    "triggers",
    "transfers",
    "log_handlers",
    "executors",
)
FIELD_TYPES: tuple[str, ...] = ("string", "integer", "boolean", "password", "json")
#: Connection attributes a field may describe; extras are ``extra.<name>``.
STANDARD_FIELDS: tuple[str, ...] = ("host", "port", "schema", "login", "password")

_REQUIRED = ("name", "package", "version", "zonda_versions")
#: Optional keys beyond the components: packages of example DAG files (module names, loaded with the core's
#: examples when ``core.load_examples`` is on) and services ``zonda standalone`` starts for them (dotted paths to
#: ``function(settings) -> context manager | None``, e.g. a local server when no connection is configured).
EXTRA_KINDS: tuple[str, ...] = ("example_dags", "standalone_services")
_TOP_KEYS = frozenset((*_REQUIRED, "description", "connection_types", *COMPONENT_KINDS, *EXTRA_KINDS))
_CONN_KEYS = frozenset(("conn_type", "hook", "display_name", "fields"))
_FIELD_KEYS = frozenset(("label", "type", "secret", "default", "help", "placeholder"))
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")
_MODULE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_CONN_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")
_EXTRA = re.compile(rf"extra\.{_IDENT}")


class ConnectionField(NamedTuple):
    """One field of a connection type's form: ``name`` is ``host`` ... ``password`` or ``extra.<key>``."""

    name: str
    label: str
    type: str = "string"
    secret: bool = False
    default: Any = None
    help: str = ""
    placeholder: str = ""

    @property
    def is_extra(self) -> bool:
        return self.name.startswith("extra.")

    def as_dict(self) -> dict[str, Any]:
        """The field schema as the manifest spells it (without the name, which is its key)."""
        return {
            "label": self.label,
            "type": self.type,
            "secret": self.secret,
            "default": self.default,
            "help": self.help,
            "placeholder": self.placeholder,
        }


class ConnectionTypeInfo(NamedTuple):
    """A connection type a provider offers: its form's fields and the hook class (a dotted path, not imported)."""

    conn_type: str
    hook: str
    display_name: str
    provider: str
    fields: dict[str, ConnectionField]

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Field names whose values must be stored encrypted and masked (``password``, ``extra.token``...)."""
        return tuple(name for name, spec in self.fields.items() if spec.secret)

    @property
    def secret_extras(self) -> tuple[str, ...]:
        """The secret extras' keys without the ``extra.`` prefix (``token``), as the masker matches them."""
        return tuple(name[6:] for name in self.secret_fields if name.startswith("extra."))

    def as_dict(self) -> dict[str, Any]:
        return {
            "conn_type": self.conn_type,
            "display_name": self.display_name,
            "hook": self.hook,
            "provider": self.provider,
            "fields": {name: spec.as_dict() for name, spec in self.fields.items()},
        }


class ProviderInfo(NamedTuple):
    """A validated provider manifest. Component lists hold dotted paths; nothing here has been imported."""

    name: str
    package: str
    version: str
    description: str
    zonda_versions: str
    connection_types: tuple[ConnectionTypeInfo, ...]
    components: dict[str, tuple[str, ...]]
    entry_point: str = ""
    example_dags: tuple[str, ...] = ()
    standalone_services: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "description": self.description,
            "zonda_versions": self.zonda_versions,
            "connection_types": [ct.conn_type for ct in self.connection_types],
            **{kind: list(self.components.get(kind, ())) for kind in COMPONENT_KINDS},
            "entry_point": self.entry_point,
            "example_dags": list(self.example_dags),
            "standalone_services": list(self.standalone_services),
        }


def is_dotted_path(value: object) -> bool:
    """True for ``"package.module:Attr"`` (``Attr`` may be ``Outer.Inner``): import-looking, never imported."""
    return isinstance(value, str) and _DOTTED.fullmatch(value) is not None


def _is_mapping(value: object) -> bool:
    # dict first: the ABC check is several times slower and manifests are nearly always plain dicts
    return isinstance(value, (dict, Mapping))


def _type_name(value: object) -> str:
    return type(value).__name__


def _default_matches(field_type: str, value: Any) -> bool:
    if value is None:
        return True
    if field_type in ("string", "password"):
        return isinstance(value, str)
    if field_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if field_type == "boolean":
        return isinstance(value, bool)
    return isinstance(value, dict | list | str | int | float | bool)  # json


def _check_dotted(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, str):
        problems.append(f"{where}: expected a dotted path string, got {_type_name(value)}")
    elif ":" not in value:
        problems.append(f"{where}: {value!r} is not a dotted path 'package.module:Class' (missing ':')")
    elif not _DOTTED.fullmatch(value):
        problems.append(f"{where}: {value!r} does not look importable (want 'package.module:Class')")


def _check_field(name: Any, spec: Any, where: str, problems: list[str]) -> None:
    if not isinstance(name, str) or not (name in STANDARD_FIELDS or _EXTRA.fullmatch(name)):
        problems.append(
            f"{where}: unknown field name {name!r} (expected one of {', '.join(STANDARD_FIELDS)} or 'extra.<name>')"
        )
    where = f"{where}[{name!r}]"
    if not _is_mapping(spec):
        problems.append(f"{where}: expected a mapping, got {_type_name(spec)}")
        return
    for key in () if spec.keys() <= _FIELD_KEYS else sorted(set(spec) - _FIELD_KEYS, key=str):
        problems.append(f"{where}: unknown key {key!r} (expected {', '.join(sorted(_FIELD_KEYS))})")
    field_type = spec.get("type", "string")
    if field_type not in FIELD_TYPES:
        problems.append(f"{where}.type: unknown field type {field_type!r} (expected one of {', '.join(FIELD_TYPES)})")
    for key in ("label", "help", "placeholder"):
        if key in spec and not isinstance(spec[key], str):
            problems.append(f"{where}.{key}: expected a string, got {_type_name(spec[key])}")
    if "secret" in spec:
        secret = spec["secret"]
        if not isinstance(secret, bool):
            problems.append(f"{where}.secret: expected true or false, got {_type_name(secret)}")
        elif not secret and (field_type == "password" or name == "password"):
            problems.append(f"{where}.secret: a password field cannot be declared non-secret")
    if field_type in FIELD_TYPES and not _default_matches(field_type, spec.get("default")):
        problems.append(
            f"{where}.default: {spec['default']!r} is not a valid {field_type} ({_type_name(spec['default'])})"
        )


def _check_connection_type(entry: Any, where: str, problems: list[str], seen: set[str]) -> None:
    if not _is_mapping(entry):
        problems.append(f"{where}: expected a mapping, got {_type_name(entry)}")
        return
    for key in () if entry.keys() <= _CONN_KEYS else sorted(set(entry) - _CONN_KEYS, key=str):
        problems.append(f"{where}: unknown key {key!r} (expected {', '.join(sorted(_CONN_KEYS))})")
    conn_type = entry.get("conn_type")
    if conn_type is None:
        problems.append(f"{where}.conn_type: missing")
    elif not isinstance(conn_type, str) or not _CONN_TYPE.fullmatch(conn_type):
        problems.append(f"{where}.conn_type: {conn_type!r} is not a valid connection type (letters, digits, _ or -)")
    elif conn_type in seen:
        problems.append(f"{where}.conn_type: {conn_type!r} is declared twice in this manifest")
    else:
        seen.add(conn_type)
    if "hook" not in entry:
        problems.append(f"{where}.hook: missing")
    else:
        _check_dotted(entry["hook"], f"{where}.hook", problems)
    if "display_name" in entry and not isinstance(entry["display_name"], str):
        problems.append(f"{where}.display_name: expected a string, got {_type_name(entry['display_name'])}")
    fields = entry.get("fields", {})
    if not _is_mapping(fields):
        problems.append(f"{where}.fields: expected a mapping of field name to spec, got {_type_name(fields)}")
        return
    for name, spec in fields.items():
        _check_field(name, spec, f"{where}.fields", problems)


def validate_manifest(manifest: Any) -> list[str]:
    """Every problem with ``manifest`` (empty when it is valid). Does not check ``zonda_versions`` against this
    core (see :func:`supports_version`) nor clashes with other providers (the registry does that)."""
    if not _is_mapping(manifest):
        return [f"manifest: expected a dict, got {_type_name(manifest)}"]
    problems: list[str] = []
    for key in _REQUIRED:
        if key not in manifest:
            problems.append(f"{key}: missing")
    for key in () if manifest.keys() <= _TOP_KEYS else sorted(set(manifest) - _TOP_KEYS, key=str):
        problems.append(f"{key}: unknown key (expected {', '.join(sorted(_TOP_KEYS))})")
    for key in (*_REQUIRED, "description"):
        if key in manifest and not isinstance(manifest[key], str):
            problems.append(f"{key}: expected a string, got {_type_name(manifest[key])}")
        elif key in _REQUIRED and key in manifest and not manifest[key].strip():
            problems.append(f"{key}: must not be empty")
    name = manifest.get("name")
    if isinstance(name, str) and name.strip() and not _NAME.fullmatch(name):
        problems.append(f"name: {name!r} is not a valid provider name (letters, digits, '_', '-', '.')")
    conn_types = manifest.get("connection_types", [])
    if not isinstance(conn_types, list | tuple):
        problems.append(f"connection_types: expected a list, got {_type_name(conn_types)}")
    else:
        seen: set[str] = set()
        for i, entry in enumerate(conn_types):
            _check_connection_type(entry, f"connection_types[{i}]", problems, seen)
    for kind in COMPONENT_KINDS:
        paths = manifest.get(kind, [])
        if not isinstance(paths, list | tuple):
            problems.append(f"{kind}: expected a list of dotted paths, got {_type_name(paths)}")
            continue
        for i, path in enumerate(paths):
            _check_dotted(path, f"{kind}[{i}]", problems)
        if len(set(map(str, paths))) != len(paths):
            problems.append(f"{kind}: lists the same path more than once")
    modules = manifest.get("example_dags", [])
    if not isinstance(modules, list | tuple):
        problems.append(f"example_dags: expected a list of module names, got {_type_name(modules)}")
    else:
        for i, module in enumerate(modules):
            if not isinstance(module, str) or not _MODULE.fullmatch(module):
                problems.append(f"example_dags[{i}]: {module!r} is not a module name like 'package.example_dags'")
    services = manifest.get("standalone_services", [])
    if not isinstance(services, list | tuple):
        problems.append(f"standalone_services: expected a list of dotted paths, got {_type_name(services)}")
    else:
        for i, path in enumerate(services):
            _check_dotted(path, f"standalone_services[{i}]", problems)
    return problems


def _field(name: str, spec: Mapping[str, Any]) -> ConnectionField:
    field_type = spec.get("type", "string")
    secret = spec.get("secret", field_type == "password" or name == "password")
    label = spec.get("label") or name.removeprefix("extra.").replace("_", " ").capitalize()
    return ConnectionField(
        name,
        label,
        field_type,
        secret,
        spec.get("default"),
        spec.get("help", ""),
        spec.get("placeholder", ""),
    )


def normalize_manifest(manifest: Mapping[str, Any], entry_point: str = "") -> ProviderInfo:
    """A :class:`ProviderInfo` from a manifest that :func:`validate_manifest` found no problem with."""
    name = manifest["name"]
    conn_types = tuple(
        ConnectionTypeInfo(
            entry["conn_type"],
            entry["hook"],
            entry.get("display_name") or entry["conn_type"],
            name,
            {field: _field(field, spec) for field, spec in entry.get("fields", {}).items()},
        )
        for entry in manifest.get("connection_types", ())
    )
    return ProviderInfo(
        name,
        manifest["package"],
        manifest["version"],
        manifest.get("description", ""),
        manifest["zonda_versions"],
        conn_types,
        {kind: tuple(manifest.get(kind, ())) for kind in COMPONENT_KINDS},
        entry_point,
        tuple(manifest.get("example_dags", ())),
        tuple(manifest.get("standalone_services", ())),
    )


# -- version compatibility ----------------------------------------------------------------------------------

_CLAUSE = re.compile(r"\s*(~=|===|==|!=|<=|>=|<|>)\s*(\S+?)\s*")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = max(len(a), len(b))
    return a + (0,) * (size - len(a)), b + (0,) * (size - len(b))


def _prefix_match(version: tuple[int, ...], prefix: tuple[int, ...]) -> bool:
    version = version + (0,) * max(0, len(prefix) - len(version))
    return version[: len(prefix)] == prefix


def _clause_holds(op: str, target: str, version: tuple[int, ...]) -> bool | None:
    """One clause on a release-only version; None when it needs full PEP 440 (a pre-release bound, ``===``...)."""
    wildcard = target.endswith(".*")
    text = target[:-2] if wildcard else target
    if not _RELEASE.fullmatch(text) or op == "===":
        return None
    bound = _release(text)
    if wildcard:
        if op == "==":
            return _prefix_match(version, bound)
        if op == "!=":
            return not _prefix_match(version, bound)
        return None  # invalid (a wildcard with an ordering operator): let the full parser say so
    if op == "~=":
        if len(bound) < 2:
            return None
        return _pad(version, bound)[0] >= _pad(version, bound)[1] and _prefix_match(version, bound[:-1])
    v, b = _pad(version, bound)
    return {"==": v == b, "!=": v != b, "<=": v <= b, ">=": v >= b, "<": v < b, ">": v > b}[op]


def _fast_supports(specifier: str, version: str) -> bool | None:
    if not _RELEASE.fullmatch(version):
        return None
    release = _release(version)
    result = True
    for clause in specifier.split(","):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            return None
        holds = _clause_holds(match.group(1), match.group(2), release)
        if holds is None:
            return None
        result = result and holds
    return result


@lru_cache(maxsize=256)
def supports_version(specifier: str, version: str) -> bool:
    """Whether ``version`` satisfies the PEP 440 ``specifier`` (e.g. ``">=0.1,<1"``).

    Pre-releases of the core count (``0.2.0.dev1`` satisfies ``>=0.1``), so a development build can load its
    providers. Raises ``ValueError`` for a specifier that is not valid PEP 440.
    """
    fast = _fast_supports(specifier, version)
    if fast is not None:
        return fast
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:
        if all(_CLAUSE.fullmatch(clause) for clause in specifier.split(",")):
            raise ValueError(
                f"cannot evaluate {specifier!r} for version {version!r} without the 'packaging' library"
            ) from None
        raise ValueError(f"{specifier!r} is not a valid version specifier") from None
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except InvalidSpecifier:
        raise ValueError(f"{specifier!r} is not a valid version specifier") from None
    except InvalidVersion:
        raise ValueError(f"{version!r} is not a valid version") from None
