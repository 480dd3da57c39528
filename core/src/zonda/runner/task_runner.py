"""One attempt of one task: render, execute under a deadline, record the outcome, fire callbacks.

This is where task-level behaviour lives, so operators don't each implement it: templating, XComArg
resolution, ``execution_timeout``, retries (deciding ``up_for_retry`` and when), skip and fail exceptions,
XCom pushing with its size limit, and callbacks (a callback that raises is logged and changes nothing).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import (
    TaskDeferred,
    TaskRescheduled,
    XComSerializationError,
    XComSizeError,
    ZondaFailException,
    ZondaSkipException,
    ZondaTaskTerminated,
    ZondaTaskTimeout,
)
from zonda.runner.retry_delay import seconds_before_retry
from zonda.state import TaskInstanceState as S
from zonda.timezone import utcnow
from zonda.xcom import XCOM_RETURN_KEY

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.context import Context
    from zonda.operators.base import BaseOperator
    from zonda.runner.instance import TaskInstance
    from zonda.runner.log_handlers import TaskLogHandler

log = logging.getLogger("zonda.runner")
_HOSTNAME = socket.gethostname()

#: Errors a retry cannot fix: the task fails at once whatever its ``retries``.
_NOT_RETRYABLE = (ZondaFailException, XComSizeError, XComSerializationError)


def retry_delay_seconds(task: Any, failed_try: int) -> float:
    """Seconds to wait after try number ``failed_try`` (1-based) of ``task`` (an operator) failed."""
    delay: timedelta = task.retry_delay or timedelta(0)
    cap: timedelta | None = task.max_retry_delay
    return seconds_before_retry(
        delay.total_seconds(),
        failed_try,
        exponential_backoff=bool(task.retry_exponential_backoff),
        max_retry_delay=None if cap is None else cap.total_seconds(),
    )


@dataclass
class RunEnvironment:
    """What every attempt in one run shares: settings, where logs go, how to render, extra context."""

    settings: Settings | None
    log_folder: Path
    renderer_factory: Callable[[], Any]
    macros: Any = None
    test_mode: bool = False
    echo_logs: bool = False
    record_state: bool = True
    params: Mapping[str, Any] | None = None
    plugins: Any = None
    #: Under a scheduler: claim the queued row first and write the end state only while still owning it.
    claim: bool = False
    #: Where attempt logs go (``[logging] task_log_handler``); None means the built-in file handler.
    log_handler: TaskLogHandler | None = None
    #: The log server of the remote worker running these attempts (recorded with each try), or None.
    log_server: str | None = None


class TaskRunner:
    def __init__(self, env: RunEnvironment) -> None:
        self.env = env
        self._renderer: Any = None

    @property
    def renderer(self) -> Any:
        if self._renderer is None:
            self._renderer = self.env.renderer_factory()
        return self._renderer

    def run_attempt(self, ti: TaskInstance, operator: BaseOperator) -> S:
        """Run the next try of ``ti`` with ``operator`` (the unmapped operator for a mapped instance)."""
        from zonda.runner.log_handlers import FileTaskLogHandler, TaskLogKey
        from zonda.runner.logs import attempt_log_path

        run = ti.dag_run
        previous_state = ti.state.value if ti.state is not S.NONE else None
        # Resuming from a deferral continues the same try (and keeps its start, which execution_timeout
        # counts from); anything else is a new try.
        resuming = ti.next_method is not None
        if not resuming:
            ti.try_number += 1
            ti.start_date = utcnow()
        elif ti.start_date is None:
            ti.start_date = utcnow()
        ti.state = S.RUNNING
        ti.end_date = None
        ti.error = None
        ti.hostname = _HOSTNAME
        ti.pid = os.getpid()
        ti.skip_requests = []
        ti.log_path = attempt_log_path(
            self.env.log_folder, run.dag_id, run.run_id, ti.task_id, ti.map_index, ti.try_number
        )
        running_values = {
            "state": S.RUNNING.value,
            "try_number": ti.try_number,
            "max_tries": ti.max_tries,
            "start_date": ti.start_date,
            "end_date": None,
            "duration": None,
            "hostname": ti.hostname,
            "pid": ti.pid,
            "queued_dttm": ti.queued_dttm,
            "log_server": self.env.log_server,
        }
        if self.env.claim:
            # Under a scheduler: take the queued row, or find someone else has (or it was cleared).
            running_values["last_heartbeat_at"] = utcnow()
            # A resumed try consumes its deferral: if it fails and retries, the retry starts at execute().
            running_values.update(next_method=None, next_kwargs=None, trigger_id=None, trigger_timeout=None)
            # Compare-and-set on the state and the try the row holds before this one starts: a workload
            # delivered twice (or late, for an older try) never runs a second time.
            held = ti.try_number if resuming else ti.try_number - 1
            if not ti.store.claim_task_instance(run, ti.task_id, ti.map_index, running_values, try_number=held):
                log.warning("%s is no longer queued for this process; not running it", ti.label)
                ti.state = S.NONE
                ti.owned = False
                return ti.state
        if ti.try_number > 1 and not resuming:
            ti.store.clear_xcoms(run, ti.task_id, ti.map_index)
        if not self.env.claim:
            ti.store.start_task_instance_in_process(run, ti.task_id, ti.map_index, running_values)
        self._notify("on_task_instance_running", previous_state=previous_state, task_instance=ti)
        started = time.perf_counter()
        context: Context | None = None
        handler = self.env.log_handler
        if handler is None:
            handler = self.env.log_handler = FileTaskLogHandler(self.env.settings, log_folder=self.env.log_folder)
        key = TaskLogKey(run.dag_id, ti.task_id, run.run_id, ti.map_index, ti.try_number)
        with handler.capture(key, ti.log_path, echo=self.env.echo_logs):
            task_log = logging.getLogger("zonda.task")
            if resuming:
                task_log.info(
                    "Resuming attempt %s of %s for %s after deferral (%s)",
                    ti.try_number,
                    ti.max_tries + 1,
                    ti.label,
                    ti.next_method,
                )
            else:
                task_log.info("Starting attempt %s of %s for %s", ti.try_number, ti.max_tries + 1, ti.label)
            rendered: dict[str, Any] = {}
            exception: BaseException | None = None
            pending: Any = None
            try:
                context = self._context(ti, operator)
                # Reschedule-mode sensors hand their slot back only when a scheduler will queue them again.
                context["reschedule_supported"] = self.env.claim
                operator, rendered = self._prepare(operator, context)
                context["task"] = operator
                result = self._execute(ti, operator, context)
                self._push_result(ti, operator, result)
                ti.state = S.SUCCESS
            except TaskRescheduled as rescheduled:
                # Only under a scheduler (sensors reschedule only when the context says it is supported).
                self._reschedule(ti, rescheduled, started, rendered)
                return ti.state
            except TaskDeferred as deferred:
                # Only under a scheduler: in process the trigger already ran inline in _execute.
                try:
                    from zonda.runner import deferral

                    pending = deferral.prepare(ti, operator, deferred, utcnow())
                except Exception as exc:
                    exception = exc
                    ti.state = self._failed_state(ti, exc)
            except ZondaSkipException as exc:
                ti.state = S.SKIPPED
                task_log.info("Skipped: %s", exc or "ZondaSkipException raised")
            except (ZondaTaskTimeout, ZondaTaskTerminated) as exc:
                exception = exc
                _safe_call(operator.on_kill, "on_kill")
                ti.state = self._failed_state(ti, exc)
            except _NOT_RETRYABLE as exc:
                exception = exc
                ti.state = S.FAILED
            except Exception as exc:
                exception = exc
                ti.state = self._failed_state(ti, exc)
            except KeyboardInterrupt:
                _safe_call(operator.on_kill, "on_kill")
                ti.state = S.FAILED
                ti.error = "interrupted"
                self._finish(ti, started, rendered)
                raise
            if pending is not None:
                self._defer(ti, pending, rendered)
                return ti.state
            if context is not None and ti.map_index >= 0:
                ti.rendered_map_index = self._render_map_index(operator, context) or ti.rendered_map_index
            if exception is not None:
                from zonda.masking import get_masker

                ti.error = get_masker().redact_text(f"{type(exception).__name__}: {exception}")
                task_log.error(
                    "Task failed%s:\n%s",
                    ", will retry" if ti.state is S.UP_FOR_RETRY else "",
                    "".join(traceback.format_exception(exception)).rstrip(),
                )
            self._finish(ti, started, rendered)
            if ti.state is S.UP_FOR_RETRY:
                delay = retry_delay_seconds(operator, ti.try_number)
                ti.next_retry_at = time.monotonic() + delay
                task_log.info("Retrying in %.3g s (try %s of %s)", delay, ti.try_number + 1, ti.max_tries + 1)
            task_log.info("Attempt ended: %s after %.3f s", ti.state.value, ti.duration or 0.0)
            if not getattr(ti, "owned", True):
                return ti.state
            if context is not None:
                self._callbacks(ti, operator, context, exception)
            self._notify_outcome(ti, exception)
        return ti.state

    def _notify(self, hook: str, **kwargs: Any) -> None:
        plugins = self.env.plugins
        if plugins is not None:
            plugins.call(hook, **kwargs)

    def _notify_outcome(self, ti: TaskInstance, exception: BaseException | None) -> None:
        if self.env.plugins is None:
            return
        if ti.state is S.SUCCESS:
            self._notify("on_task_instance_success", previous_state="running", task_instance=ti)
        elif ti.state is S.SKIPPED:
            self._notify("on_task_instance_skipped", previous_state="running", task_instance=ti)
        elif ti.state in (S.FAILED, S.UP_FOR_RETRY):
            self._notify(
                "on_task_instance_failed",
                previous_state="running",
                task_instance=ti,
                error=exception,
                will_retry=ti.state is S.UP_FOR_RETRY,
            )

    # --- steps --------------------------------------------------------------------------------------------

    def _context(self, ti: TaskInstance, operator: BaseOperator) -> Context:
        from zonda.context import build_context

        params = dict(self.env.params or {})
        if operator.params:
            from zonda.masking import get_masker, is_sensitive_name

            for key in operator.params:
                params.setdefault(key, operator.params[key])
                if is_sensitive_name(key):
                    get_masker().add(params[key], name=key)
        return build_context(
            dag=operator.dag,
            task=operator,
            dag_run=ti.dag_run,
            ti=ti,
            params=params,
            settings=self.env.settings,
            macros=self.env.macros,
            test_mode=self.env.test_mode,
            plugins=self.env.plugins,
        )

    def _render_map_index(self, operator: BaseOperator, context: Context) -> str | None:
        """The instance's readable name: its ``map_index_template`` rendered after the try (as in Airflow, so
        the task may add values to the context while it runs), over the context and the instance's mapped
        arguments. The template comes from the DAG file; the values it shows are inserted as text, never
        rendered again. A template that fails to render leaves the name unset and says why in the task log."""
        template = getattr(operator, "map_index_template", None)
        if not template:
            return None
        from zonda.masking import get_masker

        variables = {**getattr(operator, "map_arguments", {}), **context}
        try:
            text = self.renderer.render(str(template), variables)
        except Exception as exc:
            logging.getLogger("zonda.task").warning("map_index_template could not be rendered: %s", exc)
            return None
        return get_masker().redact_text(str(text))[:250]

    def _prepare(self, operator: BaseOperator, context: Context) -> tuple[BaseOperator, dict[str, Any]]:
        """A copy of the operator with templates rendered and XComArgs resolved (the original stays intact
        so a retry renders again from the source)."""
        fields = operator.template_fields
        if not fields:
            return operator, {}
        from zonda.xcom_arg import has_references, resolve_references

        prepared = copy.copy(operator)
        values = [getattr(operator, name, None) for name in fields]
        rendered: dict[str, Any] = {}
        if _has_templates(values, tuple(operator.template_ext)):
            rendered = self.renderer.render_fields(prepared, fields, context, template_ext=operator.template_ext)
        for name in fields:
            value = getattr(prepared, name, None)
            if has_references(value):
                setattr(prepared, name, resolve_references(value, context))
                rendered[name] = getattr(prepared, name)
        return prepared, rendered

    def _execute(self, ti: TaskInstance, operator: BaseOperator, context: Context) -> Any:
        from zonda.runner.timeout import deadline
        from zonda.runtime import set_current_context

        timeout = operator.execution_timeout
        seconds = timeout.total_seconds() if timeout is not None else None
        message = f"task {ti.label} ran longer than its execution_timeout of {seconds:g} s" if seconds else ""
        if seconds and ti.next_method is not None and ti.start_date is not None:
            # A resumed try: execution_timeout counts from the try's start, deferral included.
            seconds = max(seconds - (utcnow() - ti.start_date).total_seconds(), 0.001)
        if operator.on_execute_callback:
            run_callbacks(operator.on_execute_callback, context, "on_execute_callback")
        with set_current_context(context), deadline(seconds, message):
            operator.pre_execute(context)
            next_method, next_kwargs = ti.next_method, ti.next_kwargs
            while True:
                try:
                    if next_method is None:
                        result = operator.execute(context)
                    else:
                        result = _resume(operator, next_method, next_kwargs, context)
                    break
                except TaskDeferred as deferred:
                    if self.env.claim:
                        raise  # run_attempt hands it to the triggerer
                    from zonda.runner import deferral

                    # No triggerer in this process: run the trigger here and resume at once, same try.
                    next_method, next_kwargs = deferral.run_inline(ti, operator, deferred)
            operator.post_execute(context, result)
        return result

    def _reschedule(
        self, ti: TaskInstance, request: TaskRescheduled, started: float, rendered: Mapping[str, Any]
    ) -> None:
        """A reschedule-mode sensor hands its slot back: ``up_for_reschedule`` until ``reschedule_date``, then
        the scheduler queues it again and it resumes in the same try."""
        from zonda import serde

        ti.end_date = utcnow()
        ti.duration = time.perf_counter() - started
        values = {
            "ready_at": request.reschedule_date,
            "next_method": request.method_name,
            "next_kwargs": serde.dumps(request.kwargs),
            "end_date": ti.end_date,
            "duration": ti.duration,
        }
        if rendered:
            values["rendered_fields"] = _rendered_json(rendered)
        if ti.store.reschedule_task_instance(ti.dag_run, ti.task_id, ti.map_index, pid=ti.pid, values=values):
            ti.state = S.UP_FOR_RESCHEDULE
            logging.getLogger("zonda.task").info(
                "Rescheduling: the worker slot is free until the next poke at %s", request.reschedule_date
            )
        else:
            ti.owned = False
            log.error("%s: lost ownership before rescheduling; nothing recorded", ti.label)

    def _push_result(self, ti: TaskInstance, operator: BaseOperator, result: Any) -> None:
        if not operator.do_xcom_push or result is None:
            return
        if operator.multiple_outputs:
            if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
                raise ZondaFailException(
                    f"task {ti.label} has multiple_outputs=True, so it must return a dict with string keys; "
                    f"it returned {type(result).__name__}"
                )
            for key, value in result.items():
                ti.xcom_push(key, value)
        ti.xcom_push(XCOM_RETURN_KEY, result)

    def _failed_state(self, ti: TaskInstance, exc: BaseException) -> S:
        return S.UP_FOR_RETRY if ti.try_number <= ti.max_tries else S.FAILED

    def _finish(self, ti: TaskInstance, started: float, rendered: Mapping[str, Any]) -> None:
        ti.end_date = utcnow()
        ti.duration = time.perf_counter() - started
        values: dict[str, Any] = {"state": ti.state.value, "end_date": ti.end_date, "duration": ti.duration}
        if rendered:
            values["rendered_fields"] = _rendered_json(rendered)
        if ti.rendered_map_index is not None:
            values["rendered_map_index"] = ti.rendered_map_index
        if not self.env.claim:
            ti.store.finish_owned_task_instance(ti.dag_run, ti.task_id, ti.map_index, values, pid=ti.pid)
            return
        if ti.state is S.UP_FOR_RETRY:
            from datetime import timedelta

            delay = retry_delay_seconds(ti.task, ti.try_number)
            values["ready_at"] = ti.end_date + timedelta(seconds=delay)
        if ti.state is S.SUCCESS and ti.skip_requests:
            # Branch decisions are written before success, so the scheduler never queues a skipped task.
            ti.store.skip_task_instances(ti.dag_run, ti.skip_requests)
        if not ti.store.finish_owned_task_instance(ti.dag_run, ti.task_id, ti.map_index, values, pid=ti.pid):
            log.error(
                "%s: this process no longer owns the task instance (another process or the scheduler took it "
                "over); its %s state is not recorded",
                ti.label,
                ti.state.value,
            )
            ti.owned = False

    def _defer(self, ti: TaskInstance, pending: Any, rendered: Mapping[str, Any]) -> None:
        """Hand the task to the triggerer: trigger row + ``deferred`` state, only while this process owns the
        row. No callbacks or listeners fire (as in Airflow); the worker slot is free from here on."""
        from zonda.runner import deferral

        task_log = logging.getLogger("zonda.task")
        ti.state = S.DEFERRED
        extra = {"rendered_fields": _rendered_json(rendered)} if rendered else None
        if not deferral.write_deferral(ti, pending, extra):
            log.error(
                "%s: this process no longer owns the task instance (another process or the scheduler took it "
                "over); its deferral is not recorded",
                ti.label,
            )
            ti.owned = False
            return
        timeout = f", timeout at {pending.trigger_timeout.isoformat()}" if pending.trigger_timeout else ""
        task_log.info(
            "Pausing task as DEFERRED on %r (trigger %s%s); it resumes with %s()",
            pending.trigger,
            ti.trigger_id,
            timeout,
            pending.method_name,
        )

    def _callbacks(
        self, ti: TaskInstance, operator: BaseOperator, context: Context, exception: BaseException | None
    ) -> None:
        callback = {
            S.SUCCESS: operator.on_success_callback,
            S.FAILED: operator.on_failure_callback,
            S.UP_FOR_RETRY: operator.on_retry_callback,
            S.SKIPPED: operator.on_skipped_callback,
        }.get(ti.state)
        if exception is not None:
            context["exception"] = exception
        if callback:
            run_callbacks(callback, context, f"on_{ti.state.value}_callback")
        if ti.state in (S.FAILED, S.UP_FOR_RETRY) and exception is not None:
            from zonda.email_alerts import send_task_alert

            send_task_alert(self.env.settings, ti, operator, ti.state.value, exception)


def _resume(operator: Any, next_method: str, next_kwargs: Mapping[str, Any] | None, context: Context) -> Any:
    """Resume after a deferral through the operator's ``resume_execution`` when it has one (sensors do, to
    turn a trigger timeout into a sensor timeout), else the default."""
    custom = getattr(operator, "resume_execution", None)
    if custom is not None:
        return custom(next_method, next_kwargs, context)
    from zonda.runner.deferral import resume_execution

    return resume_execution(operator, next_method, next_kwargs, context)


def _has_templates(values: list[Any], template_ext: tuple[str, ...]) -> bool:
    """Whether any string inside ``values`` needs Jinja (markers, or a template file name); most don't, and
    skipping the renderer then skips importing Jinja at all."""
    stack = list(values)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "{{" in item or "{%" in item or "{#" in item or (template_ext and item.endswith(template_ext)):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
        elif hasattr(item, "template_fields"):
            return True
    return False


def run_callbacks(callbacks: Any, context: Mapping[str, Any], name: str) -> None:
    """Call one callback or each of a list; one that raises is logged to the task log and the rest still run."""
    for callback in callbacks if isinstance(callbacks, list | tuple) else [callbacks]:
        try:
            callback(context)
        except Exception:
            logging.getLogger("zonda.task").exception(
                "%s %r raised; the task's state is unchanged", name, getattr(callback, "__name__", callback)
            )


def _safe_call(fn: Callable[[], Any], name: str) -> None:
    try:
        fn()
    except Exception:
        logging.getLogger("zonda.task").exception("%s raised", name)


def _rendered_json(rendered: Mapping[str, Any]) -> str:
    """Rendered fields as stored for the UI: secrets redacted (by value and under sensitive names)."""
    from zonda import serde
    from zonda.masking import redact

    safe = {name: redact(value, name=name) for name, value in rendered.items()}
    try:
        return serde.dumps(safe)
    except Exception:
        return serde.dumps({k: repr(v)[:10000] for k, v in safe.items()})
