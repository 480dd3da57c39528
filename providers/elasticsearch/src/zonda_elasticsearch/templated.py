"""Reading templated operator arguments back into the types they stand for.

Jinja renders to text unless the DAG sets ``render_template_as_native_obj``: ``size="{{ params.n }}"`` arrives
as ``"500"``, ``aggs="{{ params.aggs | tojson }}"`` as JSON text, and ``"{{ ti.xcom_pull('docs') }}"`` as the
Python ``repr`` of a list. These helpers accept the value itself or any of those texts, and name the argument
when they cannot.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from zonda.exceptions import ZondaException


def as_int(value: Any, name: str, task_id: str, *, minimum: int = 0, allow_none: bool = False) -> int | None:
    """An integer of at least ``minimum`` from an int or its text; None passes when ``allow_none``."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if allow_none:
            return None
        raise ZondaException(f"task {task_id!r}: {name} is required")
    if isinstance(value, bool):
        raise ZondaException(f"task {task_id!r}: {name} must be an integer, not {value!r}")
    try:
        number = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ZondaException(f"task {task_id!r}: {name} must be an integer, not {value!r}") from None
    if number < minimum:
        raise ZondaException(f"task {task_id!r}: {name} must be at least {minimum}, got {number}")
    return number


def as_structure(value: Any, name: str, task_id: str) -> Any:
    """A dict or list from itself, its JSON text or its Python repr (a rendered template); other strings are
    returned as they are (a Lucene query, a field name)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in "[{":
        return value
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ZondaException(
            f"task {task_id!r}: {name} looks like a list or dict but is neither JSON nor a Python literal: "
            f"{text[:200]!r}"
        ) from None
