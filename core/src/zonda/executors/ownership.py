"""Who holds a task instance's try, as its row shows: what a heartbeat that matched no row means.

A heartbeat refreshes the row only while it is ``running`` in the heartbeating process (its pid), so a miss alone
does not say the try was taken away. The task process may not have claimed the row yet (it is still ``queued``),
or may have claimed it between the heartbeat and a look at the row; on a busy machine both happen. Stopping the
task then would fail a healthy try. Only a row running in another process, or one that left ``running`` for good
(ended, cleared, declared dead), shows that this process no longer holds it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class Holder(enum.Enum):
    """Who holds a task instance's current try, seen from one process."""

    #: Still queued: the task process has not claimed it (yet).
    UNCLAIMED = "unclaimed"
    #: Running in this process.
    THIS_PROCESS = "this process"
    #: Running in another process: a duplicate workload lost the claim, or a later try took over.
    ANOTHER_PROCESS = "another process"
    #: Not queued nor running (ended, cleared, declared dead), or the row is gone.
    NOBODY = "nobody"


def holder(row: Mapping[str, Any] | None, pid: int) -> Holder:
    """Who holds the try of ``row`` (a task instance row as a mapping), seen from the process ``pid``."""
    if row is None:
        return Holder.NOBODY
    state = row["state"]
    if state == "queued":
        return Holder.UNCLAIMED
    if state == "running":
        return Holder.THIS_PROCESS if row["pid"] == pid else Holder.ANOTHER_PROCESS
    return Holder.NOBODY
