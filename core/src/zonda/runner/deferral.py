"""Deferring a task (``self.defer(...)``) and resuming it when its trigger fires.

Under a scheduler (:attr:`RunEnvironment.claim`) a deferral writes a ``trigger`` row and moves the task
instance ``running -> deferred`` in one transaction, only while this process still owns the row; the worker
slot is then free. A triggerer runs the trigger and, when it fires, sets the instance back to ``scheduled``
with the event merged into ``next_kwargs`` under ``"event"``; the next worker resumes it in the *same* try by
calling ``getattr(operator, next_method)(context, event=payload, **next_kwargs)``.

In process (``zonda dags test``, ``zonda.testing.run_dag``: no triggerer) the trigger is rebuilt from its JSON
form, as a triggerer would, run inline until its first event and the task resumes at once.

A trigger that raises resumes the task with :data:`TRIGGER_ERROR_METHOD` (its traceback in ``next_kwargs``)
and a wait past ``trigger_timeout`` with :data:`TRIGGER_TIMEOUT_METHOD`: the resumed try then fails, and
retries apply as for any failure.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from zonda.exceptions import TaskDeferred, TriggerError, XComSerializationError, ZondaFailException

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda.runner.instance import TaskInstance
    from zonda.triggers.base import BaseTrigger

log = logging.getLogger("zonda.runner")

#: ``next_method`` of an instance whose trigger raised; ``next_kwargs = {"error": traceback}``.
TRIGGER_ERROR_METHOD = "__trigger_error__"
#: ``next_method`` of an instance whose ``trigger_timeout`` passed; ``next_kwargs = {"error": message}``.
TRIGGER_TIMEOUT_METHOD = "__trigger_timeout__"


class TriggerTimeout(TriggerError):
    """The trigger did not fire before the deferral's ``timeout`` (or the task's ``execution_timeout``)."""


def timeout_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TriggerError(f"defer(timeout=...) must be a timedelta or seconds, not {value!r}")


@dataclass
class PendingDeferral:
    """A validated deferral, ready to be written: everything is JSON already."""

    classpath: str
    trigger_kwargs: str
    method_name: str
    next_kwargs: str
    trigger_timeout: datetime | None
    trigger: Any


def prepare(ti: TaskInstance, operator: Any, deferred: TaskDeferred, now: datetime) -> PendingDeferral:
    """Serialize the trigger and kwargs (JSON only: a clear :class:`TriggerError` otherwise) and work out the
    ``trigger_timeout``: the deferral's own timeout, capped by what is left of ``execution_timeout`` counted
    from the try's start (as Airflow does)."""
    from zonda import serde
    from zonda.triggers.base import serialize_trigger

    if not isinstance(deferred.method_name, str) or not deferred.method_name:
        raise TriggerError(f"defer(method_name=...) must name a method of {type(operator).__name__}")
    if not callable(getattr(operator, deferred.method_name, None)):
        raise TriggerError(
            f"defer(method_name={deferred.method_name!r}): {type(operator).__name__} has no such method to resume with"
        )
    classpath, trigger_kwargs = serialize_trigger(deferred.trigger)
    try:
        next_kwargs = serde.dumps(dict(deferred.kwargs or {}))
    except XComSerializationError as exc:
        raise TriggerError(
            f"defer(kwargs=...) must be JSON-serializable (they are stored, not pickled): {exc}"
        ) from None
    deadline = None
    seconds = timeout_seconds(deferred.timeout)
    if seconds is not None:
        deadline = now + timedelta(seconds=seconds)
    execution_timeout = getattr(operator, "execution_timeout", None)
    if execution_timeout and ti.start_date is not None:
        cap = ti.start_date + execution_timeout
        deadline = cap if deadline is None else min(deadline, cap)
    return PendingDeferral(
        classpath=classpath,
        trigger_kwargs=trigger_kwargs,
        method_name=deferred.method_name,
        next_kwargs=next_kwargs,
        trigger_timeout=deadline,
        trigger=deferred.trigger,
    )


def write_deferral(ti: TaskInstance, pending: PendingDeferral, extra: Mapping[str, Any] | None = None) -> bool:
    """Insert the trigger row and move the instance ``running -> deferred`` in one transaction, only while
    this process (its pid) owns the row; False (and nothing written) when it no longer does."""
    trigger_id = ti.store.defer_task_instance(
        ti.dag_run,
        ti.task_id,
        ti.map_index,
        pid=ti.pid,
        classpath=pending.classpath,
        trigger_kwargs=pending.trigger_kwargs,
        values={
            "trigger_timeout": pending.trigger_timeout,
            "next_method": pending.method_name,
            "next_kwargs": pending.next_kwargs,
            **dict(extra or {}),
        },
    )
    if trigger_id is None:
        return False
    ti.trigger_id = int(trigger_id)
    return True


# --- in process -------------------------------------------------------------------------------------------


async def first_event(trigger: BaseTrigger) -> Any:
    """Run ``trigger`` until its first event; the event's payload. Always closes the trigger."""
    from zonda.triggers.base import TriggerEvent

    events = trigger.run()
    try:
        async for event in events:
            if not isinstance(event, TriggerEvent):
                raise TriggerError(f"{type(trigger).__name__}.run() yielded {event!r}, not a TriggerEvent")
            return event.payload
        raise TriggerError(f"{type(trigger).__name__}.run() ended without firing an event")
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        await trigger.cleanup()


def run_inline(ti: TaskInstance, operator: Any, deferred: TaskDeferred) -> tuple[str, dict[str, Any]]:
    """No triggerer: rebuild the trigger from its JSON form (as a triggerer would), run it here until its first
    event (bounded by the deferral's timeout) and return ``(next_method, next_kwargs)`` to resume with."""
    import asyncio

    from zonda import serde
    from zonda.timezone import utcnow
    from zonda.triggers.base import trigger_from_row

    pending = prepare(ti, operator, deferred, utcnow())
    trigger = trigger_from_row(pending.classpath, pending.trigger_kwargs)
    kwargs = serde.loads(pending.next_kwargs)
    seconds = timeout_seconds(deferred.timeout)
    task_log = logging.getLogger("zonda.task")
    task_log.info("Deferred on %r; no triggerer in this run, so the trigger runs here", trigger)
    try:
        payload = asyncio.run(asyncio.wait_for(first_event(trigger), seconds))
    except TimeoutError:
        return TRIGGER_TIMEOUT_METHOD, {"error": timeout_message(seconds)}
    except Exception:
        return TRIGGER_ERROR_METHOD, {"error": traceback.format_exc()}
    # The payload takes the same JSON round trip it would take through the metastore.
    kwargs["event"] = serde.loads(serde.dumps(payload))
    return pending.method_name, kwargs


def timeout_message(seconds: float | None = None, deadline: datetime | None = None) -> str:
    what = f"within its timeout of {seconds:g} s" if seconds is not None else "before its timeout"
    if deadline is not None:
        what = f"before its timeout ({deadline.isoformat()})"
    return f"the trigger this task was deferred on did not fire {what}"


# --- resuming ---------------------------------------------------------------------------------------------


def resume_execution(operator: Any, next_method: str, next_kwargs: Mapping[str, Any] | None, context: Context) -> Any:
    """Resume a deferred task: ``getattr(operator, next_method)(context, event=payload, **next_kwargs)``; the
    trigger's failure or timeout raises instead."""
    kwargs = dict(next_kwargs or {})
    if next_method == TRIGGER_ERROR_METHOD:
        error = str(kwargs.get("error") or "").rstrip()
        raise TriggerError(f"the trigger this task was deferred on failed:\n{error}")
    if next_method == TRIGGER_TIMEOUT_METHOD:
        raise TriggerTimeout(str(kwargs.get("error") or timeout_message()))
    method = getattr(operator, next_method, None)
    if not callable(method):
        raise ZondaFailException(f"cannot resume {type(operator).__name__}: it has no method {next_method!r}")
    event = kwargs.pop("event", None)
    return method(context, event=event, **kwargs)
