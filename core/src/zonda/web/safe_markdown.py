"""Markdown written by DAG authors (``doc_md``), rendered to HTML that cannot carry markup of its own.

The parser runs with raw HTML off, so ``<script>`` or ``<img onerror=...>`` in the text comes out escaped as
text; link and image targets pass only with a scheme on :data:`ALLOWED_SCHEMES` (or none: a relative link), so
no ``javascript:`` or ``data:`` URL survives. What this returns is the only HTML from data a template inserts.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
#: Characters a browser drops from a URL before reading its scheme (``java\tscript:`` is ``javascript:``).
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def link_allowed(url: str) -> bool:
    """Whether a link or image target may be rendered: a relative URL, or one with an allowed scheme."""
    cleaned = _IGNORED_IN_URL.sub("", url)
    found = _SCHEME.match(cleaned)
    if found is None:
        return not cleaned.startswith("//") and "\\" not in cleaned[:2]
    return found.group(1).lower() in ALLOWED_SCHEMES


def _parser() -> Any:
    """A parser per call (about a millisecond): nothing configured is shared between requests."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    parser.validateLink = link_allowed
    return parser


def render_markdown(text: str | None) -> Markup:
    """``text`` as HTML safe to insert in a page (empty for None)."""
    if not text:
        return Markup("")
    return Markup(_parser().render(str(text)))


__all__ = ["ALLOWED_SCHEMES", "link_allowed", "render_markdown"]
