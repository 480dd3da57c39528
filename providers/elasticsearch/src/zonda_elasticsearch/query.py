"""What a user may pass as a query, turned into the one thing Elasticsearch takes: a query DSL object.

Operators and the sensor accept a DSL dict (``{"match": {"title": "zonda"}}``), a full request body that wraps
one (``{"query": {...}}``), a Lucene query string (``"status:active AND age:>30"``), or nothing (every
document). A templated field may also arrive as the JSON text of a dict, since Jinja renders to strings unless
the DAG renders native objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from zonda.exceptions import ZondaException


def query_dsl(query: Any) -> dict[str, Any] | None:
    """The query DSL object for ``query``; None means "match every document"."""
    if query is None:
        return None
    if isinstance(query, str):
        text = query.strip()
        if not text or text == "*":
            return None
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return query_dsl(parsed)
        return {"query_string": {"query": text}}
    if isinstance(query, Mapping):
        # No DSL query type is called "query", so {"query": {...}} can only be a request body around one.
        if len(query) == 1 and isinstance(query.get("query"), Mapping):
            return dict(query["query"])
        return dict(query) or None
    raise ZondaException(
        f"a query must be a query DSL dict or a Lucene query string, not {type(query).__name__}: {query!r}"
    )


def describe(query: Any) -> str:
    """A short text for logs."""
    dsl = query_dsl(query)
    if dsl is None:
        return "match_all"
    text = json.dumps(dsl, default=str)
    return text if len(text) <= 300 else text[:300] + "..."
