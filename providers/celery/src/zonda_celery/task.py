"""The one Celery task: check the workload, then run it through ``zonda tasks execute``.

The message body is untrusted data. It is validated against the workload schema before anything runs; a body
that does not validate is logged and rejected (not requeued), so a bad message never runs anything and never
loops. A valid workload runs in a child process (a fork of the pool process, :mod:`zonda_celery.forked`)
through the shared worker entrypoint, the same one every executor's remote workers use, so claiming
(compare-and-set on state and try number), heartbeats, logs and end states are the core's, not this provider's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("zonda.celery")


class RejectedMessage(Exception):
    """A message that is not a valid workload (kept for the worker's log; Celery's Reject carries it)."""


def checked_workload(body: Any) -> str:
    """The canonical JSON of the workload ``body`` holds; :class:`RejectedMessage` naming the problem otherwise."""
    from zonda.executors.workload_schema import InvalidWorkload, parse_workload

    if not isinstance(body, str):
        raise RejectedMessage(f"the message's argument is {type(body).__name__}, not the workload's JSON text")
    try:
        return parse_workload(body).to_json()
    except InvalidWorkload as exc:
        raise RejectedMessage(str(exc)) from None


def run_workload(body: Any) -> int:
    """Validate ``body`` and run it; returns ``zonda tasks execute``'s exit code."""
    from celery.exceptions import Reject

    from zonda.executors.workload_schema import EXIT_NOT_CLAIMED

    try:
        workload = checked_workload(body)
    except RejectedMessage as exc:
        log.error("rejected a message that is not a valid workload; nothing ran: %s", exc)
        raise Reject(str(exc), requeue=False) from None
    from zonda_celery.forked import execute_in_fork

    code = execute_in_fork(workload)
    if code == EXIT_NOT_CLAIMED:
        log.info("workload not claimed (another delivery has this try, or it is no longer queued): %s", workload)
    elif code != 0:
        log.warning("workload ended with exit code %s: %s", code, workload)
    return code


def register_task(app: Celery) -> None:
    """Register the task on ``app`` under :data:`~zonda_celery.app.EXECUTE_TASK_NAME`."""
    from zonda_celery.app import EXECUTE_TASK_NAME

    app.task(name=EXECUTE_TASK_NAME, acks_late=True)(run_workload)
