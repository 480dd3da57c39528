"""XComArg: a reference to a task's future output, usable as an argument to another task.

Passing one to an operator or a ``@task`` call makes that task upstream; at run time the runner swaps it for
the pulled value. A mapped task's XComArg resolves to the list of every instance's value, in map-index order.

Data never becomes code: a value that arrives through a reference (an XCom, a DAG-run param, a mapped
element pulled from an upstream task) is never rendered as a template. The task runner renders the operator's
templated fields first, with references still in place (the renderer passes them through untouched), and only
then swaps the references for their values. Mapping resolves its input before the operator exists, so it wraps
each value that came from data in a :class:`ResolvedValue`, which the renderer likewise leaves alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from zonda.dependencies import DependencyMixin
from zonda.setup_teardown import SetupTeardownMixin

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda.operators.base import Node

RETURN_KEY = "return_value"


class XComArg(SetupTeardownMixin, DependencyMixin):
    def __init__(self, operator: Node, key: str = RETURN_KEY) -> None:
        self.operator = operator
        self.key = key

    def _operators(self) -> list[Node]:
        return [self.operator]

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
        ti = context["ti"]
        reader = context.get("task")
        group = self.operator.mapped_group
        if group is not None and reader is not None and getattr(reader, "mapped_group", None) is group:
            # Both in one mapped task group: instance i reads instance i, as in Airflow.
            return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key, map_indexes=ti.map_index)
        return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key)

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


class ResolvedValue:
    """A value already resolved from data (an XCom, a param): carried in a templated field so the renderer
    leaves it alone, and unwrapped by the task runner after rendering, like any other reference."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def resolve(self, context: Context | Mapping[str, Any] | None = None) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"ResolvedValue({self.value!r})"


#: What the task runner swaps for a value after rendering; the renderer never looks inside these.
REFERENCE_TYPES = (XComArg, DagParamArg, ResolvedValue)


def mark_resolved(value: Any, resolve: Callable[[Any], Any]) -> Any:
    """``value`` (a literal from the DAG file) with each reference inside it replaced by a
    :class:`ResolvedValue` of what ``resolve`` returns for it: literals stay templates, data stays data."""
    if isinstance(value, XComArg | DagParamArg):
        return ResolvedValue(resolve(value))
    if isinstance(value, dict):
        return {k: mark_resolved(v, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_resolved(v, resolve) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(mark_resolved(v, resolve) for v in value)
    return value


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


def resolve_references(value: Any, context: Context | Mapping[str, Any]) -> Any:
    """Replace every reference (XComArg, DagParamArg, ResolvedValue) inside lists, tuples, sets and dicts by
    its value. The values themselves are not looked into: what came from data is returned as it is."""
    if isinstance(value, REFERENCE_TYPES):
        return value.resolve(context)  # type: ignore[arg-type]
    if isinstance(value, dict):
        return {k: resolve_references(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, context) for v in value]
    if isinstance(value, tuple):
        items = [resolve_references(v, context) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, set | frozenset):
        return type(value)(resolve_references(v, context) for v in value)
    return value


def has_references(value: Any) -> bool:
    """Whether a reference sits anywhere inside ``value`` (lists, tuples, sets, mappings)."""
    return contains_instance(value, REFERENCE_TYPES)


def contains_instance(value: Any, types: type | tuple[type, ...]) -> bool:
    """Whether an instance of ``types`` sits anywhere inside ``value`` (lists, tuples, sets, mappings)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, types):
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return False
