"""Typed connection forms: the fields of a connection type (from the providers' manifests), a stored connection
shown in them, and a submitted form turned back into a connection.

Secrets are write-only. A form never carries a stored secret (the password, extras a manifest marks secret or
whose name looks sensitive): such a field is empty with ``is_set`` telling that a value is stored. Saving a form
with a secret field left empty keeps the stored value; the field's ``clear.<name>`` box removes it. Extras outside
the manifest's fields travel as one JSON object where secret-looking values are ``***``, which on save means
"keep the stored value". Called by the web server's connection pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ConnectionNotFound, OperationError

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.connection import Connection
    from zonda.metastore.db import Metastore
    from zonda.operations.connections import ConnectionRecord
    from zonda.providers.manifest import ConnectionField, ConnectionTypeInfo

MASK = "***"
#: Form input of the extras that are not fields of the connection type (a JSON object).
OTHER_EXTRA = "extra"
#: Prefix of the checkbox that removes a stored secret (``clear.password``).
CLEAR_PREFIX = "clear."
_GENERIC_LABELS = {"host": "Host", "port": "Port", "schema": "Schema", "login": "Login", "password": "Password"}


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    type: str
    secret: bool
    help: str
    placeholder: str
    #: The current value as text; always empty for a secret.
    text: str
    #: For a secret: whether a value is stored (left empty, the field keeps it).
    is_set: bool = False


@dataclass(frozen=True)
class ConnectionForm:
    conn_id: str
    conn_type: str
    display_name: str
    description: str
    fields: tuple[FormField, ...]
    #: The extras that are not fields, as JSON, secret-looking values ``***``.
    other_extra: str
    #: Whether the connection is stored (an edit) or new.
    exists: bool


def connection_types() -> dict[str, ConnectionTypeInfo]:
    """The connection types the installed providers offer, by ``conn_type``."""
    from zonda.providers import get_providers_registry

    return get_providers_registry().connection_types


def _field_specs(conn_type: str) -> dict[str, ConnectionField]:
    """The manifest's fields of ``conn_type``; for a type no provider describes, the standard five."""
    from zonda.providers.manifest import ConnectionField

    info = connection_types().get(conn_type)
    if info is not None and info.fields:
        return dict(info.fields)
    return {
        name: ConnectionField(name, label, "password" if name == "password" else "string", name == "password")
        for name, label in _GENERIC_LABELS.items()
    }


def _is_secret(name: str, spec: ConnectionField | None) -> bool:
    from zonda.masking import is_sensitive_name

    if spec is not None and spec.secret:
        return True
    return name == "password" or (name.startswith("extra.") and is_sensitive_name(name[6:]))


def secret_extra_keys(conn_type: str, extra: Mapping[str, Any]) -> set[str]:
    """The extras of a connection that are secret: marked so by the manifest or sensitive by name."""
    specs = _field_specs(conn_type)
    return {key for key in extra if _is_secret(f"extra.{key}", specs.get(f"extra.{key}"))}


def masked_extra(conn_type: str, extra: Any) -> Any:
    """``extra`` with every secret value ``***`` (the manifest's secret extras too, not only sensitive names)."""
    from zonda.masking import SecretsMasker

    if not isinstance(extra, dict):
        return extra
    secret = secret_extra_keys(conn_type, extra)
    shown = SecretsMasker().redact({k: v for k, v in extra.items() if k not in secret})
    return {key: (MASK if key in secret and extra[key] not in (None, "") else shown.get(key)) for key in extra}


def listing(metastore: Metastore, settings: Settings) -> list[ConnectionRecord]:
    """The stored connections as :func:`~zonda.operations.connections.list_connections` shows them, with the
    extras the manifests mark secret masked too."""
    from dataclasses import replace

    from zonda.operations.connections import list_connections

    return [replace(r, extra=masked_extra(r.conn_type, r.extra)) for r in list_connections(metastore, settings)]


def _as_text(value: Any, field_type: str) -> str:
    if value is None:
        return ""
    if field_type == "boolean":
        return "true" if value else "false"
    if field_type == "json" or isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _value_of(conn: Connection, name: str) -> Any:
    return conn.extra.get(name[6:]) if name.startswith("extra.") else getattr(conn, name)


def build_form(conn: Connection | None, conn_type: str, *, conn_id: str = "", exists: bool = False) -> ConnectionForm:
    """The form of ``conn`` (None: a new one) laid out for ``conn_type``; secrets are never in it."""
    specs = _field_specs(conn_type)
    fields = []
    for name, spec in specs.items():
        secret = _is_secret(name, spec)
        value = None if conn is None else _value_of(conn, name)
        if conn is None and not secret:
            value = spec.default
        fields.append(
            FormField(
                name=name,
                label=spec.label or name,
                type=spec.type,
                secret=secret,
                help=spec.help,
                placeholder=spec.placeholder,
                text="" if secret else _as_text(value, spec.type),
                is_set=secret and value not in (None, ""),
            )
        )
    others = {} if conn is None else {k: v for k, v in conn.extra.items() if f"extra.{k}" not in specs}
    info = connection_types().get(conn_type)
    return ConnectionForm(
        conn_id=conn_id or ("" if conn is None else conn.conn_id or ""),
        conn_type=conn_type,
        display_name=info.display_name if info is not None else conn_type or "Generic",
        description="" if conn is None or conn.description is None else conn.description,
        fields=tuple(fields),
        other_extra=json.dumps(masked_extra(conn_type, others), indent=2) if others else "",
        exists=exists,
    )


def _stored(metastore: Metastore, settings: Settings, conn_id: str) -> Connection:
    from zonda.secrets.metastore import MetastoreBackend

    conn = MetastoreBackend(metastore, settings).get_connection(conn_id)
    if conn is None:
        raise ConnectionNotFound(f"no connection {conn_id!r} in the metastore; add it on the Connections page")
    return conn


def edit_form(metastore: Metastore, settings: Settings, conn_id: str, conn_type: str | None = None) -> ConnectionForm:
    """The form of a stored connection (optionally laid out for another ``conn_type``), secrets left out."""
    conn = _stored(metastore, settings, conn_id)
    return build_form(conn, conn_type or conn.conn_type, conn_id=conn_id, exists=True)


def _parse_field(name: str, spec: ConnectionField, text: str, label: str) -> Any:
    if spec.type == "boolean":
        return text in ("true", "on", "1")
    if text.strip() == "":
        return None
    if spec.type == "integer" or name == "port":
        try:
            return int(text.strip())
        except ValueError:
            raise OperationError(f"{label}: {text.strip()[:40]!r} is not a whole number") from None
    if spec.type == "json":
        from zonda.json_input import parse_json_text

        return parse_json_text(text, label)
    return text


def _other_extra(text: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    from zonda.json_input import parse_json_object

    value = parse_json_object(text, "Other extras", '{"timeout": 30}')
    return {key: (stored[key] if item == MASK and key in stored else item) for key, item in value.items()}


def connection_from_form(values: Mapping[str, str], stored: Connection | None) -> Connection:
    """The connection a submitted form stands for; ``stored`` (an edit) supplies the secrets left empty.
    OperationError names the first bad field."""
    from zonda.connection import Connection, InvalidConnection

    conn_type = values.get("conn_type", "").strip()
    if not conn_type:
        raise OperationError("Connection type: choose one (e.g. postgres, http)")
    conn_id = stored.conn_id if stored is not None else values.get("conn_id", "").strip()
    stored_extra = {} if stored is None else dict(stored.extra)
    extra = _other_extra(values.get(OTHER_EXTRA, ""), stored_extra)
    attrs: dict[str, Any] = {}
    for name, spec in _field_specs(conn_type).items():
        value = _parse_field(name, spec, values.get(name, ""), spec.label or name)
        if _is_secret(name, spec) and value is None and values.get(CLEAR_PREFIX + name) != "true":
            value = None if stored is None else _value_of(stored, name)
        if name.startswith("extra."):
            if value is None:
                extra.pop(name[6:], None)
            else:
                extra[name[6:]] = value
        else:
            attrs[name] = value
    try:
        return Connection(
            conn_id=conn_id,
            conn_type=conn_type,
            description=values.get("description", "").strip() or None,
            extra=extra,
            **attrs,
        )
    except InvalidConnection as exc:
        raise OperationError(str(exc)) from None


def form_from_submission(values: Mapping[str, str], *, exists: bool) -> ConnectionForm:
    """A refused form shown again as sent (secrets dropped: the browser re-sends them, the page never does)."""
    conn_type = values.get("conn_type", "")
    form = build_form(None, conn_type, conn_id=values.get("conn_id", ""), exists=exists)
    from dataclasses import replace

    fields = tuple(f if f.secret else replace(f, text=values.get(f.name, "")) for f in form.fields)
    return replace(
        form, fields=fields, description=values.get("description", ""), other_extra=values.get(OTHER_EXTRA, "")
    )


def add_from_form(metastore: Metastore, settings: Settings, values: Mapping[str, str]) -> ConnectionRecord:
    """Store a new connection from a form (Conflict when its id is taken)."""
    from zonda.operations.connections import add_connection

    return add_connection(metastore, settings, connection_from_form(values, None))


def update_from_form(
    metastore: Metastore, settings: Settings, conn_id: str, values: Mapping[str, str]
) -> ConnectionRecord:
    """Replace a stored connection with a form's values, keeping the secrets the form left empty."""
    from zonda.operations.connections import masked
    from zonda.secrets.metastore import MetastoreBackend

    conn = connection_from_form(values, _stored(metastore, settings, conn_id))
    MetastoreBackend(metastore, settings).save(conn, overwrite=True)
    return masked(conn, extra=masked_extra(conn.conn_type, conn.extra))


def check_stored_connection(metastore: Metastore, settings: Settings, conn_id: str) -> Any:
    """:func:`~zonda.operations.connections.check_connection` with the answer also cleared of this
    connection's own secrets (a hook may quote them in an error)."""
    from dataclasses import replace

    from zonda.masking import SecretsMasker
    from zonda.operations.connections import check_connection

    conn = _stored(metastore, settings, conn_id)
    result = check_connection(settings, conn_id)
    masker = SecretsMasker()
    masker.add_connection(conn, secret_extra_keys(conn.conn_type, conn.extra))
    return replace(result, message=masker.redact_text(result.message))


__all__ = [
    "CLEAR_PREFIX",
    "OTHER_EXTRA",
    "ConnectionForm",
    "FormField",
    "add_from_form",
    "build_form",
    "check_stored_connection",
    "connection_from_form",
    "connection_types",
    "edit_form",
    "form_from_submission",
    "listing",
    "masked_extra",
    "secret_extra_keys",
    "update_from_form",
]


#: The fields of a connection a program may set (the API's body), besides its id.
CONNECTION_FIELDS = ("conn_type", "description", "host", "port", "schema", "login", "password", "extra")


def save_connection_fields(
    metastore: Metastore, settings: Settings, conn_id: str, changes: Mapping[str, Any], *, create: bool
) -> ConnectionRecord:
    """Create a connection from ``changes`` (``create``), or change the fields named in ``changes`` of a stored
    one: a field left out keeps its value, so a client that never saw the password (no answer carries it) can
    edit the rest; an extra sent as ``***`` keeps its stored value. Conflict / ConnectionNotFound as for forms."""
    from dataclasses import asdict

    from zonda.connection import Connection, InvalidConnection
    from zonda.operations.connections import add_connection, masked
    from zonda.secrets.metastore import MetastoreBackend

    unknown = sorted(set(changes) - set(CONNECTION_FIELDS))
    if unknown:
        raise OperationError(f"unknown connection field {unknown[0]!r}; the fields are {', '.join(CONNECTION_FIELDS)}")
    try:
        if create:
            return add_connection(metastore, settings, Connection(conn_id=conn_id, **changes))
        stored = _stored(metastore, settings, conn_id)
        values = {name: value for name, value in asdict(stored).items() if name in CONNECTION_FIELDS}
        values.update(changes)
        if "extra" in changes and isinstance(changes["extra"], Mapping):
            values["extra"] = {
                key: (stored.extra[key] if item == MASK and key in stored.extra else item)
                for key, item in changes["extra"].items()
            }
        conn = Connection(conn_id=conn_id, **values)
    except InvalidConnection as exc:
        raise OperationError(str(exc)) from None
    MetastoreBackend(metastore, settings).save(conn, overwrite=True)
    return masked(conn, extra=masked_extra(conn.conn_type, conn.extra))
