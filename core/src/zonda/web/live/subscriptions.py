"""One tab's subscription: what it watches and the changes waiting to be sent to it.

The poller thread puts, the tab's stream thread takes; a tab that cannot keep up (a stalled connection) is not
allowed to hold an unbounded backlog: past :data:`BACKLOG` changes the backlog is dropped and the tab is told
to reload everything instead (a ``resync``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from zonda.operations.changes import Change

#: Most changes held for one tab before they are replaced by one ``resync``.
BACKLOG = 1_000


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes a tab gets: those of any of ``dag_ids``, of any of ``run_ids`` and of any of ``kinds``
    (``ti``, ``run``, ``dag``); an empty set does not narrow. ``visible`` is what the user's per-DAG grants let
    them see, computed once when the tab subscribes (None: every DAG); it always narrows, whatever the tab asks."""

    dag_ids: frozenset[str] = frozenset()
    run_ids: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    visible: frozenset[str] | None = None

    def matches(self, change: Change) -> bool:
        return (
            (self.visible is None or change.dag_id in self.visible)
            and (not self.dag_ids or change.dag_id in self.dag_ids)
            and (not self.run_ids or change.run_id in self.run_ids)
            and (not self.kinds or change.kind in self.kinds)
        )


class Subscription:
    def __init__(self, watching: ChangeFilter) -> None:
        self.watching = watching
        self._pending: list[Change] = []
        self._resync = False
        self._closed = False
        self._wakeup = threading.Condition()

    def offer(self, changes: Iterable[Change]) -> None:
        """Queue those of ``changes`` this tab watches."""
        wanted = [change for change in changes if self.watching.matches(change)]
        if wanted:
            with self._wakeup:
                self._pending.extend(wanted)
                if len(self._pending) > BACKLOG:
                    self._pending.clear()
                    self._resync = True
                self._wakeup.notify()

    def resync(self) -> None:
        """Tell this tab to reload everything (changes were missed)."""
        with self._wakeup:
            self._pending.clear()
            self._resync = True
            self._wakeup.notify()

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()

    def take(self, timeout: float) -> tuple[list[Change], bool] | None:
        """Wait up to ``timeout`` seconds for news: (changes, resync) — both empty when none came — or None once
        the subscription is closed."""
        with self._wakeup:
            if not (self._closed or self._pending or self._resync):
                self._wakeup.wait(timeout)
            if self._closed:
                return None
            taken, resync = self._pending, self._resync
            self._pending, self._resync = [], False
            return taken, resync


__all__ = ["BACKLOG", "ChangeFilter", "Subscription"]
