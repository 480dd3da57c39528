"""TaskFlow: ``@task`` turns a function into a task; calling it inside a DAG adds the task and returns its
output as an :class:`~zonda.xcom_arg.XComArg`, so data dependencies read like function calls.

``@task.branch``, ``@task.short_circuit``, ``@task.bash`` and ``@task.sensor`` do the same for the branching,
short-circuit, Bash and sensor operators. ``.override()``, ``.partial()``, ``.expand()`` and
``.expand_kwargs()`` work as in Airflow.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from zonda import _context_stack
from zonda.exceptions import DagDefinitionError
from zonda.operators.base import OperatorPartial
from zonda.operators.python import (
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
    call_with_context,
)
from zonda.xcom_arg import XComArg

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda.operators.base import BaseOperator


class _DecoratedPython(PythonOperator):
    custom_operator_name: ClassVar[str] = "@task"


class _DecoratedBranch(BranchPythonOperator):
    custom_operator_name: ClassVar[str] = "@task.branch"


class _DecoratedShortCircuit(ShortCircuitOperator):
    custom_operator_name: ClassVar[str] = "@task.short_circuit"


def _bash_operator_class() -> type[BaseOperator]:
    from zonda.operators.bash import BashOperator

    class _DecoratedBash(BashOperator):
        """The function returns the Bash command to run (its arguments and context are available)."""

        custom_operator_name: ClassVar[str] = "@task.bash"
        template_fields: ClassVar[tuple[str, ...]] = (*BashOperator.template_fields, "op_args", "op_kwargs")

        def __init__(
            self,
            *,
            python_callable: Callable[..., Any],
            op_args: Any = None,
            op_kwargs: Any = None,
            **kwargs: Any,
        ) -> None:
            kwargs.setdefault("bash_command", "")
            super().__init__(**kwargs)
            self.python_callable = python_callable
            self.op_args = list(op_args or [])
            self.op_kwargs = dict(op_kwargs or {})

        def execute(self, context: Context) -> Any:
            command = call_with_context(self.python_callable, self.op_args, self.op_kwargs, context)
            if not isinstance(command, str) or not command.strip():
                raise DagDefinitionError(
                    f"@task.bash function {self.python_callable.__name__!r} must return a non-empty command string"
                )
            self.bash_command = command
            return super().execute(context)

    return _DecoratedBash


def _sensor_operator_class() -> type[BaseOperator]:
    from zonda.sensors.python import PythonSensor

    class _DecoratedSensor(PythonSensor):
        custom_operator_name: ClassVar[str] = "@task.sensor"

    return _DecoratedSensor


@functools.cache
def _lazy_class(kind: str) -> type[BaseOperator]:
    return _bash_operator_class() if kind == "bash" else _sensor_operator_class()


def _infer_multiple_outputs(fn: Callable[..., Any]) -> bool:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return False
    ret = hints.get("return")
    origin = typing.get_origin(ret) or ret
    return origin in (dict, typing.Dict)  # noqa: UP006


class TaskDecorator:
    """A decorated function. Call it in a DAG to add a task; ``.function`` is the plain function."""

    def __init__(
        self, function: Callable[..., Any], operator_class: type[BaseOperator] | str, kwargs: dict[str, Any]
    ) -> None:
        self.function = function
        self._operator_class = operator_class
        self.kwargs = kwargs
        functools.update_wrapper(self, function)

    @property
    def operator_class(self) -> type[BaseOperator]:
        if isinstance(self._operator_class, str):
            return _lazy_class(self._operator_class)
        return self._operator_class

    def _options(self) -> dict[str, Any]:
        options = dict(self.kwargs)
        options.setdefault("multiple_outputs", _infer_multiple_outputs(self.function))
        label = options.pop("task_id", None) or self.function.__name__
        options["task_id"] = _unique_label(label)
        if self.function.__doc__ and "doc_md" not in options:
            options["doc_md"] = inspect.cleandoc(self.function.__doc__)
        return options

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        _check_signature(self.function, args, kwargs)
        operator = self.operator_class(python_callable=self.function, op_args=args, op_kwargs=kwargs, **self._options())
        return XComArg(operator)

    def override(self, **kwargs: Any) -> TaskDecorator:
        return TaskDecorator(self.function, self._operator_class, {**self.kwargs, **kwargs})

    def partial(self, **kwargs: Any) -> _DecoratedPartial:
        return _DecoratedPartial(self, kwargs)

    def expand(self, **mapped: Any) -> XComArg:
        return self.partial().expand(**mapped)

    def expand_kwargs(self, value: Any) -> XComArg:
        return self.partial().expand_kwargs(value)


class _DecoratedPartial:
    def __init__(self, decorator: TaskDecorator, kwargs: dict[str, Any]) -> None:
        self.decorator = decorator
        self.kwargs = kwargs

    def _partial(self) -> OperatorPartial:
        options = self.decorator._options()
        options.update(python_callable=self.decorator.function, op_kwargs=self.kwargs)
        return OperatorPartial(self.decorator.operator_class, options, mapped_into="op_kwargs")

    def expand(self, **mapped: Any) -> XComArg:
        return XComArg(self._partial().expand(**mapped))

    def expand_kwargs(self, value: Any) -> XComArg:
        return XComArg(self._partial().expand_kwargs(value))


def _unique_label(label: str) -> str:
    """Calling one decorated function twice in a DAG gives ``name``, ``name__1``, ... ."""
    dag = _context_stack.current_dag()
    group = _context_stack.current_group()
    if dag is None:
        return label

    def full(candidate: str) -> str:
        return group.child_id(candidate) if group is not None else candidate

    if full(label) not in dag.task_dict:
        return label
    n = 1
    while full(f"{label}__{n}") in dag.task_dict:
        n += 1
    return f"{label}__{n}"


def _check_signature(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Catch a wrong call while the DAG is defined, not when the task runs (context names may be left out)."""
    from zonda.context import CONTEXT_KEYS

    signature = inspect.signature(fn)
    try:
        signature.bind_partial(*args, **kwargs)
    except TypeError as exc:
        raise DagDefinitionError(f"task {fn.__name__!r}: {exc}") from None
    bound = signature.bind_partial(*args, **kwargs).arguments
    missing = [
        name
        for name, p in signature.parameters.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in bound
        and name not in CONTEXT_KEYS
    ]
    if missing:
        raise DagDefinitionError(f"task {fn.__name__!r} is missing arguments: {', '.join(missing)}")


def _make(operator_class: type[BaseOperator] | str) -> Callable[..., Any]:
    def decorator(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        if python_callable is not None and callable(python_callable):
            return TaskDecorator(python_callable, operator_class, kwargs)
        return lambda fn: TaskDecorator(fn, operator_class, kwargs)

    return decorator


class _TaskNamespace:
    """``task`` itself: ``@task``, ``@task(...)``, and ``@task.branch`` & co."""

    python = staticmethod(_make(_DecoratedPython))
    branch = staticmethod(_make(_DecoratedBranch))
    short_circuit = staticmethod(_make(_DecoratedShortCircuit))
    bash = staticmethod(_make("bash"))
    sensor = staticmethod(_make("sensor"))

    def __call__(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        return self.python(python_callable, **kwargs)


task = _TaskNamespace()
