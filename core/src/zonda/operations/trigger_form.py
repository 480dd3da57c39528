"""The trigger form of a DAG: its fields, built from the ``Param`` schema in the serialized DAG, and the run conf
a submitted form stands for, checked field by field before any run is created.

The web server shows this form; it never imports the DAG file, so everything here comes from ``serialized_dag``.
Each field's error is one line naming the problem, shown next to that field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from zonda.exceptions import ZondaException
from zonda.metastore import tables as t
from zonda.params import NOTSET, Param

#: The form's field for the raw JSON conf (its errors are filed under this name too).
CONF_FIELD = "conf"
#: How many past runs are read to find the recent distinct confs.
RECENT_RUNS_SCANNED = 200
#: Prefix of a param's input name, so a param called ``conf`` or ``csrf_token`` cannot clash with the form's own.
PARAM_PREFIX = "param."

_KINDS_BY_TYPE = {"boolean": "boolean", "integer": "integer", "number": "number", "string": "string"}


@dataclass(frozen=True)
class ParamField:
    """One input of the form. ``kind`` picks the widget: boolean (checkbox), integer, number, string, enum
    (select whose options are JSON texts) or json (a textarea for arrays, objects and untyped values)."""

    name: str
    kind: str
    description: str | None
    #: The input's initial text (JSON for enum options and json fields).
    text: str
    required: bool
    options: tuple[str, ...] = ()
    #: The schema's constraints as short text (``minimum 1``), shown beside the field.
    hints: tuple[str, ...] = ()

    @property
    def input_name(self) -> str:
        return PARAM_PREFIX + self.name

    @property
    def checked(self) -> bool:
        return self.kind == "boolean" and self.text == "true"


@dataclass(frozen=True)
class TriggerForm:
    dag_id: str
    fields: tuple[ParamField, ...]
    #: Confs of the DAG's latest runs, newest first, each once, as JSON text (secret-looking values ``***``).
    recent_confs: tuple[str, ...] = ()
    #: The raw JSON conf field's text: the keys of a reused conf that are not params.
    raw_conf: str = ""


@dataclass
class TriggerRequest:
    """What a submitted form asks for: the conf, or errors by field name (:data:`CONF_FIELD` for the raw JSON)."""

    conf: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: The submitted texts by input name, to show the form again as it was sent.
    texts: dict[str, str] = field(default_factory=dict)


def _types(schema: Mapping[str, Any]) -> list[str]:
    types = schema.get("type")
    return [types] if isinstance(types, str) else list(types or [])


def _kind(param: Param) -> str:
    if "enum" in param.schema:
        return "enum"
    types = [name for name in _types(param.schema) if name != "null"]
    if len(types) == 1:
        return _KINDS_BY_TYPE.get(types[0], "json")
    if types:
        return "json"
    default = param.value
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "integer"
    if isinstance(default, float):
        return "number"
    if default is NOTSET or default is None or isinstance(default, str):
        return "string"
    return "json"


def _text(kind: str, value: Any) -> str:
    if value is NOTSET or value is None:
        return "false" if kind == "boolean" else ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("string", "integer", "number") and not isinstance(value, list | dict):
        return str(value)
    return json.dumps(value)


_HINT_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern")


def _field(name: str, param: Param, value: Any = NOTSET) -> ParamField:
    kind = _kind(param)
    shown = param.value if value is NOTSET else value
    options = tuple(json.dumps(option) for option in param.schema.get("enum", ()))
    hints = tuple(f"{key} {param.schema[key]}" for key in _HINT_KEYS if key in param.schema)
    text = json.dumps(shown) if kind == "enum" and shown is not NOTSET else _text(kind, shown)
    return ParamField(name, kind, param.description, text, not param.has_value, options, hints)


def _params(conn: Any, dag_id: str) -> Any:
    from zonda.scheduler.runs import load_serialized

    return load_serialized(conn, dag_id).params


def recent_confs(conn: Any, dag_id: str, limit: int) -> tuple[str, ...]:
    """The last ``limit`` distinct non-empty confs of the DAG's runs, newest first, masked."""
    from zonda.operations.dag_runs import record

    dr = t.dag_run
    rows = conn.execute(
        select(dr).where(dr.c.dag_id == dag_id).order_by(dr.c.id.desc()).limit(RECENT_RUNS_SCANNED)
    ).all()
    seen: dict[str, None] = {}
    for row in rows:
        conf = record(row).conf
        if conf:
            seen.setdefault(json.dumps(conf, sort_keys=True, default=str), None)
        if len(seen) >= limit:
            break
    return tuple(seen)


def trigger_form(engine: Any, dag_id: str, *, reuse: int | None = None, recent: int = 5) -> TriggerForm:
    """The form of ``dag_id`` (DagNotFound with suggestions when unknown). ``reuse``: fill it with the recent
    conf of that index instead of the defaults (params in their fields, other keys in the raw conf)."""
    with engine.connect() as conn:
        params = _params(conn, dag_id)
        confs = recent_confs(conn, dag_id, recent) if recent else ()
    chosen = json.loads(confs[reuse]) if reuse is not None and 0 <= reuse < len(confs) else {}
    fields = tuple(_field(name, params.get_param(name), chosen.get(name, NOTSET)) for name in params)
    rest = {key: value for key, value in chosen.items() if key not in params}
    return TriggerForm(dag_id, fields, confs, json.dumps(rest, indent=2) if rest else "")


def _parse(param_field: ParamField, text: str | None) -> Any:
    """The value a field's text stands for (NOTSET: left empty, so the default applies); ValueError if bad."""
    if param_field.kind == "boolean":
        return text in ("true", "on", "1")
    if text is None or text.strip() == "":
        return NOTSET
    if param_field.kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"{text.strip()[:40]!r} is not a whole number") from None
    if param_field.kind == "number":
        try:
            return int(text.strip())
        except ValueError:
            pass
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"{text.strip()[:40]!r} is not a number") from None
    if param_field.kind in ("enum", "json"):
        from zonda.json_input import parse_json_text

        return parse_json_text(text, param_field.name)
    return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_raw_conf(text: str | None) -> dict[str, Any]:
    """The raw JSON conf field as a dict (empty: ``{}``); a one-line ZondaException otherwise."""
    from zonda.json_input import parse_json_object

    return parse_json_object(text, "the conf", '{"key": "value"}')


def read_trigger_request(engine: Any, dag_id: str, form: Mapping[str, str]) -> TriggerRequest:
    """Check a submitted form: the raw JSON conf first, then each param's field (which wins over the same key
    in the raw conf), each against its schema. Nothing is created here."""
    from zonda.identifiers import InvalidIdentifier, validate_conf

    with engine.connect() as conn:
        params = _params(conn, dag_id)
    request = TriggerRequest(texts={key: str(value) for key, value in form.items()})
    try:
        request.conf = parse_raw_conf(form.get(CONF_FIELD))
    except ZondaException as exc:
        request.errors[CONF_FIELD] = str(exc)
    for name in params:
        param = params.get_param(name)
        param_field = _field(name, param)
        try:
            value = _parse(param_field, form.get(param_field.input_name))
            if value is NOTSET:
                value = request.conf.get(name, NOTSET)
            resolved = param.resolve(value, name=name)
        except (ValueError, ZondaException) as exc:
            request.errors[name] = _one_line(str(exc))
            continue
        if value is not NOTSET:
            request.conf[name] = resolved
    if not request.errors:
        try:
            request.conf = validate_conf(request.conf)
        except InvalidIdentifier as exc:
            request.errors[CONF_FIELD] = _one_line(str(exc))
    return request


def refill(form: TriggerForm, texts: Mapping[str, str]) -> TriggerForm:
    """The form showing the texts a user sent (after an error), instead of the defaults."""
    fields = []
    for param_field in form.fields:
        sent = texts.get(param_field.input_name)
        if param_field.kind == "boolean":
            sent = "true" if sent in ("true", "on", "1") else "false"
        fields.append(param_field if sent is None else _replace_text(param_field, sent))
    return TriggerForm(form.dag_id, tuple(fields), form.recent_confs, texts.get(CONF_FIELD, ""))


def _replace_text(param_field: ParamField, text: str) -> ParamField:
    from dataclasses import replace

    return replace(param_field, text=text)


__all__ = [
    "CONF_FIELD",
    "ParamField",
    "TriggerForm",
    "TriggerRequest",
    "parse_raw_conf",
    "read_trigger_request",
    "recent_confs",
    "refill",
    "trigger_form",
]
