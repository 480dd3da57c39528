"""Reading a JSON file a user names on the command line (``-`` for standard input), with one-line errors.

Import commands (connections, variables) share it, so an unreadable, non-UTF-8 or malformed file gets the same
clear message everywhere instead of a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from zonda.exceptions import ZondaException

__all__ = ["parse_json_object", "parse_json_text", "read_json_file"]


def read_json_file(path: str, example: str) -> Any:
    """The JSON document in ``path`` (``-``: standard input). ``example`` shows the expected shape in errors."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ZondaException(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ZondaException(f"{path} is not UTF-8 text; write it as JSON: {example}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZondaException(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def parse_json_text(text: str, what: str) -> Any:
    """JSON typed into a form field; a one-line error naming ``what`` and where the JSON breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZondaException(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def parse_json_object(text: str | None, what: str, example: str) -> dict[str, Any]:
    """A form field holding a JSON object (empty: ``{}``); ``example`` shows the expected shape in the error."""
    if text is None or not text.strip():
        return {}
    value = parse_json_text(text, what)
    if not isinstance(value, dict):
        raise ZondaException(f"{what}: must be a JSON object, e.g. {example}")
    return value
