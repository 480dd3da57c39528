"""Who holds a task instance's try, as its row shows: what a heartbeat that matched no row means.

A heartbeat refreshes the row only while it is ``running`` in the heartbeating process (its pid), so a miss alone
does not say the try was taken away. On a busy machine the task process may not have claimed the row yet (it is
still ``queued``), may have claimed it between the heartbeat and a look at the row, or may have just recorded its
own end state; stopping the task then fails a healthy try. Whoever takes a try away (another process's claim,
the scheduler declaring it dead, ``tasks clear``) changes or clears the row's pid, so only a row that names
another process, or none, shows that this process no longer holds it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from zonda.state import TaskInstanceState as TIS


class Holder(enum.Enum):
    """Who holds a task instance's current try, seen from one process."""

    #: Still queued: the task process has not claimed it (yet).
    UNCLAIMED = "unclaimed"
    #: This process: running it, or it recorded the try's end (or deferral) itself.
    THIS_PROCESS = "this process"
    #: Running in another process: a duplicate workload lost the claim, or a later try took over.
    ANOTHER_PROCESS = "another process"
    #: Nobody: ended or cleared by someone else (the scheduler, ``tasks clear``), or the row is gone.
    NOBODY = "nobody"


def holder(row: Mapping[str, Any] | None, pid: int) -> Holder:
    """Who holds the try of ``row`` (a task instance row as a mapping), seen from the process ``pid``."""
    if row is None:
        return Holder.NOBODY
    if row["state"] == TIS.QUEUED:
        return Holder.UNCLAIMED
    if row["state"] in _WRITTEN_BY_THE_TASK_PROCESS and row["pid"] == pid:
        return Holder.THIS_PROCESS
    if row["state"] == TIS.RUNNING:
        return Holder.ANOTHER_PROCESS
    return Holder.NOBODY


#: The states a task process writes itself, keeping its pid on the row (whoever else ends a try clears the pid).
_WRITTEN_BY_THE_TASK_PROCESS = frozenset(
    state.value
    for state in (
        TIS.RUNNING,
        TIS.SUCCESS,
        TIS.FAILED,
        TIS.SKIPPED,
        TIS.UP_FOR_RETRY,
        TIS.UP_FOR_RESCHEDULE,
        TIS.DEFERRED,
    )
)


def lost(row: Mapping[str, Any] | None, pid: int) -> bool:
    """Whether the process ``pid`` no longer holds the try of ``row`` after a heartbeat matched nothing: another
    process runs it, or someone else ended or cleared it. Still queued (not claimed yet) or still this process's
    (claimed or ended by itself just now) is not lost."""
    return holder(row, pid) in (Holder.ANOTHER_PROCESS, Holder.NOBODY)
