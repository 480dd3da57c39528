"""The rules for ids that come from users (run ids, connection ids, variable keys) and for a run's ``conf``.

Why these rules: a run id becomes part of a task-log path and of URLs, and both ids are stored in ``String(250)``
columns that are part of unique indexes on every metastore backend. A ``/`` in a run id would write into another
run's log folder (``a/b`` and ``a_b`` once shared a file), a 300-character id fails on PostgreSQL and MariaDB with
a driver traceback, and a conf nested thousands of levels deep makes JSON encoding raise ``RecursionError``.
Checking where ids enter (CLI, Python API, secrets backends) turns each of those into a one-line error that names
the rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from zonda.exceptions import ZondaException

#: Longest run id or connection id: the ``String(250)`` id columns of :mod:`zonda.metastore.tables`, which fit
#: MariaDB's 3072-byte index limit in utf8mb4 (the allowed characters are ASCII, one byte each anyway).
MAX_ID_LENGTH = 250

#: Run ids: letters, digits and ``_ . : + ~ -`` (generated ids such as ``manual__2024-01-01T00:00:00+00:00``).
RUN_ID_RULE = "letters, digits and _ . : + ~ -, at most 250 characters, not starting with . or -"
_RUN_ID = re.compile(r"[A-Za-z0-9_:+~][A-Za-z0-9_.:+~-]*")

#: Connection ids: letters, digits and ``_ . -`` (they also name ``ZONDA_CONN_<ID>`` variables).
CONN_ID_RULE = "letters, digits and _ . -, at most 250 characters, not starting with . or -"
_CONN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

#: Variable keys: the same characters (they also name ``ZONDA_VAR_<KEY>`` variables and fill a ``String(250)``
#: unique column); a key with spaces or ``{}`` could not be written as ``{{ var.value.key }}`` either.
VARIABLE_KEY_RULE = CONN_ID_RULE

#: Deepest nesting of a run's conf (objects and lists). Far more than any real conf needs, far below what
#: makes Python's JSON encoder or the serializers recurse too deep.
MAX_CONF_DEPTH = 64

#: Default largest conf, in bytes of its JSON text (``[core] max_conf_bytes``).
DEFAULT_MAX_CONF_BYTES = 1024 * 1024


class InvalidIdentifier(ZondaException, ValueError):
    """A run id, connection id, variable key or conf breaks the rules above. The message names the rule."""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def validate_run_id(run_id: object) -> str:
    """``run_id`` itself when it follows :data:`RUN_ID_RULE`, else :class:`InvalidIdentifier`."""
    return _validate(run_id, "run id", _RUN_ID, RUN_ID_RULE)


def validate_conn_id(conn_id: object) -> str:
    """``conn_id`` itself when it follows :data:`CONN_ID_RULE`, else :class:`InvalidIdentifier`."""
    return _validate(conn_id, "connection id", _CONN_ID, CONN_ID_RULE)


def validate_variable_key(key: object) -> str:
    """``key`` itself when it follows :data:`VARIABLE_KEY_RULE`, else :class:`InvalidIdentifier`."""
    return _validate(key, "variable key", _CONN_ID, VARIABLE_KEY_RULE)


def _validate(value: object, what: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(f"a {what} must be a non-empty string of {rule}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdentifier(f"{what} {_shown(value)} is {len(value)} characters long; use {rule}")
    if not pattern.fullmatch(value):
        raise InvalidIdentifier(f"{what} {_shown(value)} is not allowed; use {rule}")
    return value


def conf_depth_exceeds(text: str, limit: int = MAX_CONF_DEPTH) -> bool:
    """Whether JSON ``text`` nests objects/lists deeper than ``limit``: one pass over the characters, so a
    hostile text is refused before the recursive JSON parser sees it."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_conf_text(text: str, *, max_bytes: int = DEFAULT_MAX_CONF_BYTES, where: str = "--conf") -> dict[str, Any]:
    """A run's conf from JSON text: an object, at most ``max_bytes`` and :data:`MAX_CONF_DEPTH` levels deep."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidIdentifier(
            f"{where} is {size} bytes; a run's conf may hold at most {max_bytes} ([core] max_conf_bytes): "
            "pass large data through files or a database and put their location in the conf"
        )
    if conf_depth_exceeds(text):
        raise InvalidIdentifier(f"{where} is nested more than {MAX_CONF_DEPTH} levels deep; flatten it")
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidIdentifier(f"{where} is not valid JSON ({exc}); e.g. {where} '{{\"limit\": 10}}'") from None
    if not isinstance(conf, dict):
        raise InvalidIdentifier(f"{where} must be a JSON object, e.g. {where} '{{\"limit\": 10}}'")
    return conf


def validate_conf(conf: Mapping[str, Any] | None, *, max_bytes: int = DEFAULT_MAX_CONF_BYTES) -> dict[str, Any]:
    """A conf given as Python data (the Python API): a mapping with string keys, JSON-encodable, at most
    :data:`MAX_CONF_DEPTH` levels deep and ``max_bytes`` long as JSON. Returns it as a plain dict."""
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise InvalidIdentifier(f"a run's conf must be a mapping (a JSON object), got {type(conf).__name__}")
    _check_shape(conf, max_bytes)
    try:
        text = json.dumps(conf, default=str)
    except (TypeError, ValueError) as exc:
        raise InvalidIdentifier(f"a run's conf must be JSON data: {exc}") from None
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidIdentifier(
            f"a run's conf is {size} bytes as JSON; at most {max_bytes} are allowed ([core] max_conf_bytes)"
        )
    return dict(conf)


def _check_shape(conf: Any, max_bytes: int) -> None:
    """Depth, iteratively (a recursive walk is what a hostile conf would break). A reference cycle shows up as
    too deep; containers are counted, so a structure that shares one list many times cannot make the walk
    (or its JSON text) exponential: every container costs at least one byte of JSON."""
    stack: list[tuple[Any, int]] = [(conf, 1)]
    containers = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping | list | tuple):
            if depth > MAX_CONF_DEPTH:
                raise InvalidIdentifier(f"a run's conf is nested more than {MAX_CONF_DEPTH} levels deep; flatten it")
            containers += 1
            if containers > max_bytes:
                raise InvalidIdentifier(f"a run's conf is larger than {max_bytes} bytes ([core] max_conf_bytes)")
            items = value.values() if isinstance(value, Mapping) else value
            stack.extend((item, depth + 1) for item in items)
