"""XComArg: a reference to a task's future output, usable as an argument to another task.

Passing one to an operator or a ``@task`` call makes that task upstream; at run time the runner swaps it for
the pulled value. A mapped task's XComArg resolves to the list of every instance's value, in map-index order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zonda.dependencies import DependencyMixin

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda.operators.base import Node

RETURN_KEY = "return_value"


class XComArg(DependencyMixin):
    def __init__(self, operator: Node, key: str = RETURN_KEY) -> None:
        self.operator = operator
        self.key = key

    def __getitem__(self, key: str) -> XComArg:
        """``task_output["name"]``: one key of a ``multiple_outputs`` task."""
        return XComArg(self.operator, key)

    @property
    def roots(self) -> list[Node]:
        return [self.operator]

    @property
    def leaves(self) -> list[Node]:
        return [self.operator]

    def resolve(self, context: Context) -> Any:
        return context["ti"].xcom_pull(task_ids=self.operator.task_id, key=self.key)

    def __iter__(self) -> Any:
        raise TypeError(
            f"the output of task {self.operator.task_id!r} is not known until it runs, so it cannot be iterated "
            "while the DAG is defined; pass it to another task or use .expand()"
        )

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"


class DagParamArg:
    """An ``@dag`` function argument: resolves to ``params[name]`` of the running DAG run."""

    def __init__(self, name: str) -> None:
        self.name = name

    def resolve(self, context: Context) -> Any:
        return context["params"][self.name]

    def __repr__(self) -> str:
        return f"DagParamArg({self.name!r})"


def find_xcom_args(value: Any) -> list[XComArg]:
    found: list[XComArg] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, XComArg):
            found.append(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return found


def resolve_references(value: Any, context: Context) -> Any:
    """Replace every XComArg / DagParamArg inside lists, tuples and dicts by its value."""
    if isinstance(value, XComArg | DagParamArg):
        return value.resolve(context)
    if isinstance(value, dict):
        return {k: resolve_references(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, context) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_references(v, context) for v in value)
    return value


def has_references(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, XComArg | DagParamArg):
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
