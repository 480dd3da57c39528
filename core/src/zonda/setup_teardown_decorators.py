"""``@setup`` and ``@teardown``: TaskFlow functions whose every task is a setup or a teardown, as in Airflow.

``@setup`` also stacks over another decorator (``@setup`` above ``@task.bash``), as Airflow allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zonda.decorators import TaskDecorator, _DecoratedPartial
from zonda.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from zonda.xcom_arg import XComArg


class _RoleDecorator(TaskDecorator):
    """A ``@task`` function whose every call (plain, ``override``, mapped) adds a setup or a teardown."""

    def __init__(
        self,
        function: Callable[..., Any],
        operator_class: Any,
        kwargs: dict[str, Any],
        role: Callable[[XComArg], XComArg],
    ) -> None:
        super().__init__(function, operator_class, kwargs)
        self.role = role

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        return self.role(super().__call__(*args, **kwargs))

    def override(self, **kwargs: Any) -> TaskDecorator:
        return _RoleDecorator(self.function, self._operator_class, {**self.kwargs, **kwargs}, self.role)

    def partial(self, **kwargs: Any) -> _DecoratedPartial:
        return _RolePartial(self, kwargs)


class _RolePartial(_DecoratedPartial):
    decorator: _RoleDecorator

    def expand(self, **mapped: Any) -> XComArg:
        return self.decorator.role(super().expand(**mapped))

    def expand_kwargs(self, value: Any) -> XComArg:
        return self.decorator.role(super().expand_kwargs(value))


def _with_role(function: Any, role: Callable[[XComArg], XComArg]) -> _RoleDecorator:
    """``@setup`` over a plain function (a ``@task``) or over an already decorated one (``@task.bash``)."""
    if isinstance(function, TaskDecorator):
        return _RoleDecorator(function.function, function._operator_class, dict(function.kwargs), role)
    if not callable(function):
        raise DagDefinitionError(f"@setup / @teardown decorate a function, not {function!r}")
    from zonda.decorators import task

    plain = task(function)
    return _RoleDecorator(plain.function, plain._operator_class, dict(plain.kwargs), role)


def setup(python_callable: Callable[..., Any]) -> _RoleDecorator:
    """``@setup``: a ``@task`` (or a stacked ``@task.bash`` & co.) whose tasks are setups."""
    return _with_role(python_callable, lambda output: output.as_setup())


def teardown(python_callable: Callable[..., Any] | None = None, *, on_failure_fail_dagrun: bool = False) -> Any:
    """``@teardown`` or ``@teardown(on_failure_fail_dagrun=True)``: a ``@task`` whose tasks are teardowns."""

    def role(output: XComArg) -> XComArg:
        return output.as_teardown(on_failure_fail_dagrun=on_failure_fail_dagrun)

    if python_callable is None:
        return lambda function: _with_role(function, role)
    return _with_role(python_callable, role)
