"""Which polled rows are news: the watermark the next poll starts from, and what each row looked like last.

Why an overlap: ``updated_at`` is set by the writer's clock when its statement runs, but the row becomes visible
only when its transaction commits, possibly after a later-stamped row was already read. Each poll therefore
reads again the last :data:`OVERLAP` seconds below the newest stamp seen, and the tracker drops rows whose
state it already reported. The same check hides changes nobody watches for: heartbeats and re-parses move
``updated_at`` without changing a state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from zonda.operations.changes import Change

#: How far below the newest stamp seen each poll reads again (transactions shorter than this are never missed).
OVERLAP = timedelta(seconds=2)
#: Most rows whose last state is remembered; the oldest are forgotten first (a forgotten row that changes again
#: is simply reported again).
REMEMBERED = 50_000


class ChangeTracker:
    def __init__(self, started_at: datetime, *, remembered: int = REMEMBERED) -> None:
        #: Rows stamped before this (and not seen since) were there before anyone watched: not news.
        self._started_at = started_at
        self._newest = started_at
        #: No poll reads below this: the start (what changed before was loaded with the page) and, after a
        #: truncated poll, the end of the burst (so a burst cannot pin the window).
        self._floor = started_at
        self._remembered = remembered
        self._last: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()

    @property
    def since(self) -> datetime:
        """Where the next poll starts reading."""
        return max(self._newest - OVERLAP, self._floor)

    def news(self, polled: Iterable[Change]) -> list[Change]:
        """The changes among ``polled`` (oldest first) that a watcher has not been told yet."""
        fresh = []
        for change in polled:
            self._newest = max(self._newest, change.updated_at)
            before = self._last.pop(change.key, None)
            self._last[change.key] = change.signature
            if before is None and change.updated_at <= self._started_at:
                continue
            if before != change.signature:
                fresh.append(change)
        while len(self._last) > self._remembered:
            self._last.popitem(last=False)
        return fresh

    def skip_to(self, moment: datetime) -> None:
        """Start the next poll at ``moment``: after a truncated poll, whose readers were told to reload."""
        self._floor = max(self._floor, moment)
        self._newest = max(self._newest, moment)


__all__ = ["OVERLAP", "ChangeTracker"]
