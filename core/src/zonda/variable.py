"""``Variable``: named settings DAG files and tasks read at run time, as Airflow's ``Variable``.

    from zonda import Variable

    bucket = Variable.get("bucket")                                  # KeyError-like error if undefined
    limits = Variable.get("limits", default_var={}, deserialize_json=True)
    Variable.set("last_export", "2024-01-01")

A value is looked up where connections are (:meth:`zonda.secrets.ConnectionLookup.find_variable`): the secrets
backends plugins contribute, then ``ZONDA_VAR_<KEY>`` (key upper-cased), then the metastore, where values are
Fernet-encrypted. ``set`` and ``delete`` change the metastore only. The value of a key that looks sensitive
(``api_token``, ``db_password``...) is hidden as ``***`` in logs and rendered fields once read.

Templates see the same values through :class:`VariableAccessor` (``{{ var.value.key }}``,
``{{ var.json.key.field }}``, ``{{ var.value.get('key', 'default') }}``), which reads nothing until used.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import VariableNotFound, ZondaException

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.secrets import ConnectionLookup

__all__ = ["Variable", "VariableAccessor", "VariableNotFound"]


class _NotSet:
    """The "no default given" marker (``None`` is a valid default)."""

    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class InvalidVariableValue(ZondaException, ValueError):
    """A variable read with ``deserialize_json=True`` does not hold JSON. The message never quotes the value."""


def how_to_set(key: str) -> str:
    from zonda.secrets.environment import EnvironmentVariablesBackend

    return (
        f"Set it with `zonda variables set {key} VALUE`, Variable.set({key!r}, ...) or the environment variable "
        f"{EnvironmentVariablesBackend.variable_env_name(key)}"
    )


def decode_json(key: str, text: str) -> Any:
    """``text`` parsed as JSON, or :class:`InvalidVariableValue` naming the key (and not the value)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidVariableValue(
            f"variable {key!r} is not valid JSON ({exc.msg} at position {exc.pos}); read it without "
            "deserialize_json or store JSON text"
        ) from None


def encode_value(value: Any, serialize_json: bool) -> str:
    """The text stored for ``value``: JSON when ``serialize_json`` (indented, as Airflow writes it), else the
    string itself (other types as ``str(value)``, as Airflow does)."""
    if serialize_json:
        try:
            return json.dumps(value, indent=2)
        except (TypeError, ValueError) as exc:
            raise InvalidVariableValue(f"the value cannot be written as JSON: {exc}") from None
    return value if isinstance(value, str) else str(value)


class Variable:
    """Read and write variables from DAG files and task code (Airflow's classmethods and argument names)."""

    #: The lookup every call uses when none is passed. None: a fresh one per call, from
    #: :func:`zonda.config.load_settings`. A task process sets one built with its settings and plugin manager
    #: (:func:`zonda.cli._loading.prepare_task_process`), so plugins are not loaded again for each variable.
    default_lookup: ClassVar[ConnectionLookup | None] = None

    @staticmethod
    def lookup_for(lookup: ConnectionLookup | None = None, settings: Settings | None = None) -> ConnectionLookup:
        """``lookup``, else the process's default, else a new one with ``settings`` (default: loaded)."""
        if lookup is not None:
            return lookup
        if Variable.default_lookup is not None:
            return Variable.default_lookup
        from zonda.secrets import ConnectionLookup

        return ConnectionLookup(settings)

    @classmethod
    def get(
        cls,
        key: str,
        default_var: Any = NOTSET,
        deserialize_json: bool = False,
        *,
        default: Any = NOTSET,
        lookup: ConnectionLookup | None = None,
    ) -> Any:
        """The value of ``key`` (parsed JSON with ``deserialize_json``); ``default_var`` when no place defines
        it, else :class:`~zonda.exceptions.VariableNotFound` (a ``KeyError``) naming the places looked in.
        ``default`` is Airflow 3's name for ``default_var``; give one of them."""
        if default is not NOTSET:
            if default_var is not NOTSET:
                raise TypeError("Variable.get() takes default_var or default, not both")
            default_var = default
        found_in = cls.lookup_for(lookup)
        found = found_in.find_variable(key)
        if found is None:
            if default_var is not NOTSET:
                return default_var
            raise VariableNotFound(
                f"variable {key!r} is not defined; looked in: {found_in.variable_places(key)}. {how_to_set(key)}"
            )
        value = found[0]
        return decode_json(key, value) if deserialize_json else value

    @classmethod
    def set(
        cls,
        key: str,
        value: Any,
        serialize_json: bool = False,
        description: str | None = None,
        *,
        lookup: ConnectionLookup | None = None,
    ) -> None:
        """Store ``key`` in the metastore (encrypted), replacing any stored value. A value that a secrets
        backend or ``ZONDA_VAR_<KEY>`` defines still wins on reads; a warning says so."""
        from zonda.identifiers import validate_variable_key

        validate_variable_key(key)
        text = encode_value(value, serialize_json)
        target = cls.lookup_for(lookup)
        target.metastore_backend.save_variable(key, text, description=description)
        _warn_if_shadowed(target, key)

    @classmethod
    def delete(cls, key: str, *, lookup: ConnectionLookup | None = None) -> int:
        """Delete ``key`` from the metastore; returns the number of rows deleted (0 or 1), as Airflow."""
        from zonda.identifiers import validate_variable_key

        validate_variable_key(key)
        return int(cls.lookup_for(lookup).metastore_backend.delete_variable(key))


def _warn_if_shadowed(lookup: ConnectionLookup, key: str) -> None:
    import logging

    places = [b for b in lookup.plugin_backends() if callable(getattr(b, "get_variable", None))]
    shadowed_by = None
    for backend in places:
        try:
            if backend.get_variable(key) is not None:
                from zonda.secrets.base import describe_backend

                shadowed_by = describe_backend(backend, key)
                break
        except Exception:  # only a warning: the lookup itself reports broken backends
            continue
    if shadowed_by is None and lookup.environment.get_variable(key) is not None:
        shadowed_by = f"environment variable {lookup.environment.variable_env_name(key)}"
    if shadowed_by is not None:
        logging.getLogger("zonda.variable").warning(
            "variable %r was stored in the metastore, but %s also defines it and wins on reads", key, shadowed_by
        )


class _SharedLookup:
    """Makes the lookup on first use and keeps it, for both halves of one :class:`VariableAccessor`."""

    __slots__ = ("_lookup", "_plugins", "_settings")

    def __init__(self, settings: Settings | None, plugins: Any) -> None:
        self._settings = settings
        self._plugins = plugins
        self._lookup: ConnectionLookup | None = None

    def __call__(self) -> ConnectionLookup:
        if self._lookup is None:
            if Variable.default_lookup is not None or self._plugins is None:
                self._lookup = Variable.lookup_for(settings=self._settings)
            else:
                from zonda.secrets import ConnectionLookup

                self._lookup = ConnectionLookup(self._settings, plugins=self._plugins)
        return self._lookup


class _VariableValues:
    """``var.value`` / ``var.json`` in templates: an attribute, item or ``get()`` per key, nothing else public.

    The lookup sits in a slot whose name starts with ``_``, which the template sandbox never lets a template
    reach, so templates get values and nothing of the machinery (engine, settings, plugins) behind them."""

    __slots__ = ("_deserialize", "_lookup")

    def __init__(self, lookup: _SharedLookup, deserialize: bool) -> None:
        self._lookup = lookup
        self._deserialize = deserialize

    def get(self, key: str, default_var: Any = NOTSET) -> Any:
        """The value of ``key``, or ``default_var`` when undefined (Airflow's ``var.value.get('k', 'd')``)."""
        return Variable.get(key, default_var, self._deserialize, lookup=self._lookup())

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self.get(key)

    def __getitem__(self, key: str) -> Any:
        # ``var.value['my-key']``: keys with ``-`` or ``.`` are not attribute names.
        return self.get(key)

    def __repr__(self) -> str:
        return "<variable JSON values>" if self._deserialize else "<variable values>"


class VariableAccessor:
    """``var`` in the task context: ``var.value.<key>`` (text) and ``var.json.<key>`` (parsed JSON).

    Building one costs nothing: the lookup (and any database connection) is made on first use, with the
    process's default lookup when one is set, else ``settings`` and ``plugins`` (the run's secrets backends)."""

    __slots__ = ("json", "value")

    def __init__(self, settings: Settings | None = None, plugins: Any = None) -> None:
        shared = _SharedLookup(settings, plugins)
        self.value = _VariableValues(shared, deserialize=False)
        self.json = _VariableValues(shared, deserialize=True)

    def __repr__(self) -> str:
        return "<variables: var.value.KEY, var.json.KEY>"
