"""Where the browser tests save the README's pictures: ``ZONDA_SCREENSHOTS=1`` means ``docs/screenshots/``, any
other value names a folder; unset, nothing is saved."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs/screenshots"


def save_screenshot(target: Any, name: str) -> None:
    """Save ``target`` (a Playwright page or locator) as ``name`` when ``ZONDA_SCREENSHOTS`` asks for pictures."""
    wanted = os.environ.get("ZONDA_SCREENSHOTS", "")
    if not wanted:
        return
    folder = DOCS_SCREENSHOTS if wanted == "1" else Path(wanted)
    folder.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(folder / name))
