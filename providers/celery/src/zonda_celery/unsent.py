"""Workloads the broker could not take (it is down), kept to be sent when it is back.

Why not give them back to the scheduler: it would queue them again at once, fail to send again, and after a few
rounds fail the tries of tasks that never had a chance to run. Kept here, they still count as running (the
scheduler's limits hold), and the scheduler's ``task_queued_timeout`` check still sees them as queued: one it
takes back is dropped here (the caller says which are still current).

Sending is retried with a doubling wait (from :data:`FIRST_WAIT` to :data:`LONGEST_WAIT`) so a long outage costs
the scheduler one failed connection attempt per wait, not one per task.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.executors.base import Workload

#: Seconds before the first retry after a failed send.
FIRST_WAIT = 0.5
#: Longest wait between retries, seconds.
LONGEST_WAIT = 10.0


class UnsentMessages:
    """Workloads (with their JSON text) waiting for the broker, oldest first, by task instance key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: OrderedDict[tuple[str, str, str, int], tuple[Workload, str]] = OrderedDict()
        self._wait = FIRST_WAIT
        self._next_try = 0.0

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def __len__(self) -> int:
        return len(self._waiting)

    def keep(self, workload: Workload, text: str, *, failed: bool = False) -> None:
        """Hold ``workload`` back; ``failed``: a send just failed, so wait (longer each time) before the next."""
        self._waiting[workload.key] = (workload, text)
        self._waiting.move_to_end(workload.key, last=not failed)  # a failed resend keeps its place in line
        if failed:
            self._next_try = self._clock() + self._wait
            self._wait = min(self._wait * 2, LONGEST_WAIT)

    def due(self, current: Callable[[Workload], bool]) -> Iterator[tuple[Workload, str]]:
        """When the wait is over: each held workload still ``current``, oldest first, removed as it is handed
        out (a failed send puts it back with :meth:`keep`). Nothing before that."""
        if not self._waiting or self._clock() < self._next_try:
            return
        while self._waiting:
            _key, (workload, text) = self._waiting.popitem(last=False)
            if not current(workload):
                continue
            waiting_before = self._next_try
            yield workload, text
            if self._next_try != waiting_before:  # that send failed: stop this round
                return
        self._wait = FIRST_WAIT  # everything went out: the next outage starts with a short wait again
