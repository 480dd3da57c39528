"""Task instances queued for longer than ``[scheduler] task_queued_timeout`` that no worker ever claimed.

Why: an executor whose workloads travel through a broker can lose one without anyone noticing: the broker
restarted without persistence, or a worker died holding a message it had not started (Redis gives such a message
back only after its visibility timeout, hours later). The instance then stays ``queued`` for ever. After the
timeout the scheduler puts it back to be queued again (no try is used up: nothing ran) and sends a new workload.

A message that was only slow, not lost, may still arrive: the claim is a compare-and-set on the state and the try
number, so at most one of the two deliveries runs. Each further time one instance is put back it is given twice
as long, so a queue that is merely backed up (more queued work than workers) sends a few duplicates at most, never
a flood, and no instance is ever failed for waiting.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class StuckQueued:
    """How often each instance was put back for waiting too long, and when it is overdue again."""

    #: Instances remembered at most (bounded memory: a forgotten count only shortens that instance's next wait).
    MAX_REMEMBERED = 10_000
    #: The wait doubles at most this many times.
    MAX_DOUBLINGS = 6

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._requeued: dict[int, int] = {}

    def cutoff(self, now: datetime) -> datetime:
        """Instances queued before this may be overdue (the first, shortest wait)."""
        return now - timedelta(seconds=self.timeout)

    def overdue(self, ti_id: int, queued_at: datetime | None, now: datetime) -> bool:
        """Whether the instance ``ti_id``, queued at ``queued_at``, has waited longer than its allowance."""
        if queued_at is None:
            return True
        doublings = min(self._requeued.get(ti_id, 0), self.MAX_DOUBLINGS)
        return now - queued_at >= timedelta(seconds=self.timeout * 2**doublings)

    def requeued(self, ti_id: int) -> int:
        """Count one more putting back of ``ti_id``; returns how many times it has been."""
        if len(self._requeued) >= self.MAX_REMEMBERED:
            self._requeued.clear()
        count = self._requeued.get(ti_id, 0) + 1
        self._requeued[ti_id] = count
        return count

    def claimed(self, ti_id: int) -> None:
        """The instance's workload ended (so it was claimed, or ended unclaimed and is handled as lost)."""
        self._requeued.pop(ti_id, None)
