"""Variables: get, set, delete, list, import and export, as the CLI (and later the UI and API) offer them.

Reads go through the same lookup as task code (:class:`zonda.secrets.ConnectionLookup`: plugin secrets
backends, ``ZONDA_VAR_<KEY>``, the metastore); writes change the metastore only, values Fernet-encrypted.
Listings never show the value of a key that looks sensitive (:func:`zonda.masking.is_sensitive_name`); an
explicit :func:`get_variable` returns it, as Airflow's ``variables get`` prints it.

The file format of import and export is one JSON object, ``{"key": value}``. A stored value that is a JSON
object or array is exported as that JSON; every other value as the string it is, so an export imports back to
the same texts. On import, a value that is not a string is stored as its JSON text (as Airflow does).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zonda.exceptions import VariableNotFound, ZondaException
from zonda.variable import NOTSET

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.metastore.db import Metastore
    from zonda.plugins.manager import PluginManager
    from zonda.secrets import ConnectionLookup
    from zonda.secrets.metastore import MetastoreBackend

__all__ = [
    "ExistingKeyAction",
    "ImportResult",
    "VariableRow",
    "delete_variable",
    "edit_variable",
    "export_shown",
    "export_variables",
    "get_variable",
    "import_variable_items",
    "import_variables",
    "list_variables",
    "read_import_file",
    "set_variable",
    "variable_items",
]

MASK = "***"
UNREADABLE = "(encrypted with a key not in [core] fernet_key)"

ExistingKeyAction = Literal["overwrite", "fail", "skip"]


@dataclass(frozen=True)
class VariableRow:
    """A stored variable as a listing shows it: ``value`` is ``***`` for a sensitive-looking key."""

    key: str
    value: str | None
    description: str | None
    is_encrypted: bool


@dataclass(frozen=True)
class ImportResult:
    added: int
    replaced: int
    skipped: list[str]


def _backend(settings: Settings, metastore: Metastore | None) -> MetastoreBackend:
    from zonda.secrets.metastore import MetastoreBackend

    return MetastoreBackend(metastore, settings)


def _lookup(
    settings: Settings, metastore: Metastore | None, plugins: PluginManager | Literal[False] | None
) -> ConnectionLookup:
    from zonda.secrets import ConnectionLookup

    return ConnectionLookup(settings, plugins=plugins, metastore=metastore)


def get_variable(
    settings: Settings,
    key: str,
    *,
    default: Any = NOTSET,
    deserialize_json: bool = False,
    metastore: Metastore | None = None,
    plugins: PluginManager | Literal[False] | None = None,
) -> Any:
    """The value of ``key`` from wherever the lookup finds it (parsed JSON with ``deserialize_json``);
    ``default`` when given and no place defines it, else :class:`VariableNotFound`."""
    from zonda.variable import Variable

    return Variable.get(key, default, deserialize_json, lookup=_lookup(settings, metastore, plugins))


def set_variable(
    settings: Settings,
    key: str,
    value: Any,
    *,
    description: str | None = None,
    serialize_json: bool = False,
    metastore: Metastore | None = None,
) -> bool:
    """Store ``key`` in the metastore, encrypted (a Fernet key is made on first need). Returns True when it
    replaced a stored value."""
    from zonda.identifiers import validate_variable_key
    from zonda.variable import encode_value

    validate_variable_key(key)
    return _backend(settings, metastore).save_variable(
        key, encode_value(value, serialize_json), description=description
    )


def edit_variable(
    settings: Settings, key: str, value: str | None, *, description: str | None, metastore: Metastore | None = None
) -> bool:
    """Store ``key`` with ``value``; ``value`` None keeps the stored value and changes only the description (a
    form that never showed a secret value can still edit its description). Returns True when it replaced one."""
    from zonda.identifiers import validate_variable_key

    validate_variable_key(key)
    if value is None:
        stored = _backend(settings, metastore).get_variable(key)
        if stored is None:
            raise VariableNotFound(f"no variable {key!r} in the metastore; give it a value")
        value = stored
    return set_variable(settings, key, value, description=description, metastore=metastore)


def delete_variable(settings: Settings, key: str, *, metastore: Metastore | None = None) -> None:
    """Delete ``key`` from the metastore; :class:`VariableNotFound` when it has none (saying so when the
    environment defines the key, which only that environment can change)."""
    from zonda.identifiers import validate_variable_key
    from zonda.secrets.environment import EnvironmentVariablesBackend

    validate_variable_key(key)
    backend = _backend(settings, metastore)
    if backend.delete_variable(key):
        return
    message = f"no variable {key!r} in the {backend.describe(key)}"
    env = EnvironmentVariablesBackend()
    if env.get_variable(key) is not None:
        message += (
            f"; it is defined by the environment variable {env.variable_env_name(key)}, which only its "
            "environment can remove"
        )
    raise VariableNotFound(message)


def list_variables(settings: Settings, *, metastore: Metastore | None = None) -> list[VariableRow]:
    """The metastore's variables, by key; values of sensitive-looking keys are ``***`` (and not decrypted)."""
    from zonda.crypto import FernetKeyError
    from zonda.masking import is_sensitive_name

    backend = _backend(settings, metastore)
    rows = []
    for row in backend.variable_rows():
        if is_sensitive_name(row.key):
            value: str | None = MASK
        else:
            try:
                value = backend.variable_value(row)
            except FernetKeyError:
                value = UNREADABLE
        rows.append(VariableRow(row.key, value, row.description, bool(row.is_encrypted)))
    return rows


def export_variables(settings: Settings, path: str, *, metastore: Metastore | None = None) -> int:
    """Write the metastore's variables to ``path`` (``-``: standard output) as ``{"key": value}``, decrypted;
    the file is created owner-only. Returns the number written. Nothing is written if any value cannot be
    decrypted."""
    backend = _backend(settings, metastore)
    data = {row.key: _exported(backend.variable_value(row)) for row in backend.variable_rows()}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        from zonda.private_files import write_private_file

        write_private_file(Path(path), text)
    return len(data)


def _exported(value: str | None) -> Any:
    if value and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def read_import_file(path: str) -> list[tuple[str, str]]:
    """The ``(key, text)`` pairs of an import file, every key checked before anything is stored."""
    from zonda.json_input import read_json_file

    return variable_items(read_json_file(path, '{"key": "value"}'), path)


def variable_items(data: Any, source: str) -> list[tuple[str, str]]:
    """The ``(key, text)`` pairs of an import document (parsed JSON) from ``source`` (a path, an upload's name),
    every key checked before anything is stored."""
    from zonda.identifiers import InvalidIdentifier, validate_variable_key

    if not isinstance(data, dict):
        raise ZondaException(f'{source} must hold one JSON object of key -> value, e.g. {{"bucket": "my-bucket"}}')
    items = []
    for key, value in data.items():
        try:
            validate_variable_key(key)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(f"{source}: {exc}; nothing was imported") from None
        if value is None:
            raise ZondaException(f"{source}: variable {key!r} has no value (null); nothing was imported")
        items.append((key, value if isinstance(value, str) else json.dumps(value)))
    return items


def import_variables(
    settings: Settings,
    path: str,
    *,
    action_on_existing_key: ExistingKeyAction = "overwrite",
    metastore: Metastore | None = None,
) -> ImportResult:
    """Store the variables of an import file in one transaction (all or none). Existing keys are replaced
    (``overwrite``, Airflow's default), left alone (``skip``) or stop the import before anything changes
    (``fail``)."""
    return import_variable_items(
        settings,
        read_import_file(path),
        source=path,
        action_on_existing_key=action_on_existing_key,
        metastore=metastore,
    )


def import_variable_items(
    settings: Settings,
    items: list[tuple[str, str]],
    *,
    source: str,
    action_on_existing_key: ExistingKeyAction = "overwrite",
    metastore: Metastore | None = None,
) -> ImportResult:
    """Store ``(key, text)`` pairs (from :func:`variable_items`) as :func:`import_variables` does."""
    backend = _backend(settings, metastore)
    existing = {row.key for row in backend.variable_rows()}
    clashes = [key for key, _ in items if key in existing]
    if clashes and action_on_existing_key == "fail":
        raise ZondaException(
            f"{source}: variable(s) {', '.join(map(repr, clashes))} already exist; nothing was imported "
            "(use --action-on-existing-key overwrite or skip)"
        )
    skipped = clashes if action_on_existing_key == "skip" else []
    to_store = [(key, text, None) for key, text in items if key not in skipped]
    replaced, added = backend.save_variables(to_store)
    return ImportResult(added=added, replaced=replaced, skipped=skipped)


def export_shown(settings: Settings, *, metastore: Metastore | None = None) -> tuple[dict[str, Any], list[str]]:
    """The export document of the variables whose keys do not look sensitive, and the keys left out: what the
    web server may hand out (``zonda variables export`` writes them all to an owner-only file)."""
    from zonda.masking import is_sensitive_name

    backend = _backend(settings, metastore)
    shown: dict[str, Any] = {}
    left_out = []
    for row in backend.variable_rows():
        if is_sensitive_name(row.key):
            left_out.append(row.key)
        else:
            shown[row.key] = _exported(backend.variable_value(row))
    return shown, left_out
