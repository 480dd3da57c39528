"""FileTrigger: fire when a file (or a glob match, or a non-empty directory) appears."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from zonda.exceptions import TriggerError
from zonda.triggers.base import BaseTrigger, TriggerEvent


def find_match(pattern: str, recursive: bool = False) -> str | None:
    """The first path matching ``pattern`` that counts: a file, or a directory with a file somewhere beneath
    it (an empty directory is usually created before the data lands). None when nothing counts yet."""
    import glob

    for path in glob.iglob(os.path.expanduser(pattern), recursive=recursive):
        if os.path.isfile(path):
            return path
        if os.path.isdir(path) and has_file(path):
            return path
    return None


def has_file(directory: str) -> bool:
    """Whether any file lies beneath ``directory``; stops at the first one instead of walking it all."""
    return any(files for _root, _dirs, files in os.walk(directory))


class FileTrigger(BaseTrigger):
    """Polls ``filepath`` (a glob; ``recursive`` lets ``**`` cross directories) every ``poke_interval`` seconds.

    The file system is looked at in a worker thread, so a slow disk never stalls the triggerer's loop. The
    event's payload is the path that matched.
    """

    def __init__(self, filepath: str | os.PathLike[str], recursive: bool = False, poke_interval: float = 1.0) -> None:
        super().__init__()
        if not isinstance(filepath, str | os.PathLike) or not os.fspath(filepath):
            raise TriggerError(f"FileTrigger: filepath must be a non-empty path, not {filepath!r}")
        if isinstance(poke_interval, bool) or not isinstance(poke_interval, int | float) or poke_interval <= 0:
            raise TriggerError(
                f"FileTrigger: poke_interval must be a positive number of seconds, not {poke_interval!r}"
            )
        self.filepath = os.fspath(filepath)
        self.recursive = bool(recursive)
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "zonda.triggers.file.FileTrigger",
            {"filepath": self.filepath, "recursive": self.recursive, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        while True:
            found = await asyncio.to_thread(find_match, self.filepath, self.recursive)
            if found is not None:
                yield TriggerEvent(found)
                return
            await asyncio.sleep(self.poke_interval)
