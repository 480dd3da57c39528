"""What the browser tests check on every page: the console stayed free of errors.

``live.js`` (the shared live-update stream's client) is built on another branch; the run page already links it, so
until it lands in this checkout its 404 is the one error tolerated. Once the file exists, nothing is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parents[3] / "core/src/zonda/web/static"
LIVE_JS = "/static/js/live.js"


def console_errors(page: Any) -> list[str]:
    """The page's console errors, less those of a ``live.js`` this checkout does not have yet."""
    if (STATIC / LIVE_JS.removeprefix("/static/")).exists():
        return list(page.console_errors)
    return [error for error in page.console_errors if LIVE_JS not in error]
