"""Run Python callables: PythonOperator, and the branching and short-circuit operators built on it."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.operators.base import BaseOperator

if TYPE_CHECKING:
    from zonda.context import Context


def call_with_context(
    fn: Callable[..., Any], args: Iterable[Any], kwargs: Mapping[str, Any], context: Mapping[str, Any]
) -> Any:
    """Call ``fn`` with ``args``, ``kwargs``, and the context values its parameters ask for by name.

    A callable with ``**kwargs`` gets the whole context; otherwise only parameters named like context keys
    (``ti``, ``ds``, ``params``...) are filled. Explicit keyword arguments win over context values. An
    ``async def`` callable is awaited in its own event loop and its result returned.
    """
    args = list(args)
    signature = _signature(fn)
    params = signature.parameters
    takes_var_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    call_kwargs: dict[str, Any] = {}
    if takes_var_kwargs:
        call_kwargs.update(context)
    else:
        positional_names = [
            name for name, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][: len(args)]
        for name, p in params.items():
            if name in context and name not in positional_names and p.kind is not p.POSITIONAL_ONLY:
                call_kwargs[name] = context[name]
    call_kwargs.update(kwargs)
    result = fn(*args, **call_kwargs)
    if inspect.iscoroutine(result):
        # An ``async def`` callable (Airflow 3 runs these too): run it to the end in a fresh event loop here,
        # so what it returns, not the coroutine object, becomes the XCom.
        import asyncio

        return asyncio.run(result)
    return result


_SIGNATURES: dict[Any, inspect.Signature] = {}


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return _SIGNATURES[fn]
    except (KeyError, TypeError):
        pass
    sig = inspect.signature(fn)
    with contextlib.suppress(TypeError):
        _SIGNATURES[fn] = sig
    return sig


class PythonOperator(BaseOperator):
    """Call ``python_callable(*op_args, **op_kwargs)``; its return value is the task's XCom."""

    template_fields: ClassVar[tuple[str, ...]] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "templates_dict": "json",
        "op_args": "py",
        "op_kwargs": "py",
    }
    ui_color: ClassVar[str] = "#ffefeb"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        templates_exts: list[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            raise ZondaException(f"task {kwargs.get('task_id')!r}: python_callable must be callable")
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict
        if templates_exts:
            self.template_ext = tuple(templates_exts)  # type: ignore[misc]
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context: Context) -> Any:
        context_for_call = context.copy()  # values needing a query stay unread unless asked for
        context_for_call["templates_dict"] = self.templates_dict
        result = self.execute_callable(context_for_call)
        if self.show_return_value_in_logs and result is not None:
            from zonda.masking import redact

            text = repr(redact(result))  # values under sensitive keys ({"token": ...}) are *** in the log
            self.log.info("Returned value: %s", text if len(text) <= 2000 else text[:2000] + "...")
        return result

    def execute_callable(self, context: Mapping[str, Any]) -> Any:
        return call_with_context(self.python_callable, self.op_args, self.op_kwargs, context)


class SkipMixin:
    """Marks downstream tasks skipped through the running task instance (``ti.skip_tasks``)."""

    def skip_tasks(self, context: Context, task_ids: Collection[str]) -> None:
        if task_ids:
            context["ti"].skip_tasks(sorted(task_ids))


class BaseBranchOperator(BaseOperator, SkipMixin):
    """Follow the task ids :meth:`choose_branch` returns; the other direct downstream tasks are skipped."""

    inherits_from_skipmixin: ClassVar[bool] = True

    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        chosen = self.choose_branch(context)
        self.follow_branch(context, chosen)
        return chosen

    def follow_branch(self, context: Context, chosen: str | Iterable[str] | None) -> None:
        dag = self.dag
        assert dag is not None
        if chosen is None:
            wanted: set[str] = set()
        elif isinstance(chosen, str):
            wanted = {chosen}
        else:
            wanted = set(chosen)
        followed: set[str] = set()
        invalid = []
        for tid in wanted:
            if tid in dag.task_groups:
                followed.update(t.task_id for t in dag.task_groups[tid].roots)
            elif tid in dag.task_dict:
                followed.add(tid)
            else:
                invalid.append(tid)
        if invalid:
            raise ZondaException(
                f"branch task {self.task_id!r} returned unknown task ids {sorted(invalid)}; "
                f"return ids of its downstream tasks: {sorted(self.downstream_task_ids)}"
            )
        not_downstream = followed - self.downstream_task_ids
        if not_downstream:
            raise ZondaException(
                f"branch task {self.task_id!r} returned {sorted(not_downstream)}, which are not directly "
                f"downstream of it; its downstream tasks: {sorted(self.downstream_task_ids)}"
            )
        self.log_branch(followed)
        self.skip_tasks(context, self.downstream_task_ids - followed)

    def log_branch(self, followed: set[str]) -> None:
        import logging

        logging.getLogger("zonda.task").info("Following branch %s", sorted(followed) or "(none)")


class BranchPythonOperator(PythonOperator, BaseBranchOperator):
    """A PythonOperator whose callable returns the task id(s) to follow."""

    ui_color: ClassVar[str] = "#ffefeb"

    def execute(self, context: Context) -> Any:
        chosen = PythonOperator.execute(self, context)
        self.follow_branch(context, chosen)
        return chosen


class ShortCircuitOperator(PythonOperator, SkipMixin):
    """Continue only if the callable returns something truthy.

    When it is falsy and ``ignore_downstream_trigger_rules`` is True (the default), every task downstream is
    skipped; when False, only the direct downstream tasks are, and further tasks follow their trigger rules.
    """

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: Context) -> Any:
        condition = super().execute(context)
        if condition:
            self.log.info("Condition is truthy; downstream tasks proceed")
            return condition
        targets = self.get_flat_relative_ids() if self.ignore_downstream_trigger_rules else self.downstream_task_ids
        self.log.info("Condition is falsy; skipping %s", sorted(targets))
        self.skip_tasks(context, targets)
        return condition
