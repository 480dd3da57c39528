"""Task groups: a named set of tasks whose ids are prefixed with the group id (``group.task``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zonda import _context_stack
from zonda.dependencies import DependencyMixin
from zonda.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.operators.base import Node
    from zonda.xcom_arg import XComArg


class TaskGroup(DependencyMixin):
    def __init__(
        self,
        group_id: str,
        *,
        prefix_group_id: bool = True,
        tooltip: str = "",
        default_args: dict[str, Any] | None = None,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        ui_color: str = "CornflowerBlue",
    ) -> None:
        if not group_id or not all(c.isalnum() or c in "_-." for c in group_id):
            raise DagDefinitionError(f"invalid task group id {group_id!r}: use letters, digits, '_', '-' and '.'")
        self.parent_group = parent_group if parent_group is not None else _context_stack.current_group()
        self.dag = dag or (self.parent_group.dag if self.parent_group else _context_stack.current_dag())
        if self.dag is None:
            raise DagDefinitionError(f"task group {group_id!r} must be created inside a DAG (or pass dag=)")
        self._group_id = group_id
        self.prefix_group_id = prefix_group_id
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.default_args = dict(default_args or {})
        self.children: dict[str, Node | TaskGroup] = {}
        self.dag._register_group(self)
        if self.parent_group is not None:
            self.parent_group.children[self.group_id] = self

    @property
    def group_id(self) -> str:
        if self.parent_group is not None and self.parent_group.prefix_group_id:
            return f"{self.parent_group.group_id}.{self._group_id}"
        return self._group_id

    def child_id(self, label: str) -> str:
        """The full task id of a task labelled ``label`` inside this group."""
        if self.prefix_group_id:
            return f"{self.group_id}.{label}"
        if self.parent_group is not None:
            return self.parent_group.child_id(label)
        return label

    def effective_default_args(self) -> dict[str, Any]:
        merged = self.parent_group.effective_default_args() if self.parent_group else {}
        merged.update(self.default_args)
        return merged

    def mapped_group(self) -> MappedTaskGroup | None:
        """The mapped task group this group is, or sits in; None when no enclosing group is mapped."""
        return self.parent_group.mapped_group() if self.parent_group is not None else None

    def add(self, node: Node) -> None:
        self.children[node.task_id] = node

    def iter_tasks(self) -> list[Node]:
        tasks: list[Node] = []
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                tasks.extend(child.iter_tasks())
            else:
                tasks.append(child)
        return tasks

    @property
    def roots(self) -> list[Node]:
        tasks = self.iter_tasks()
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.upstream_task_ids & ids)]

    @property
    def leaves(self) -> list[Node]:
        tasks = self.iter_tasks()
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.downstream_task_ids & ids)]

    def __enter__(self) -> TaskGroup:
        _context_stack.push_group(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _context_stack.pop_group()

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id}>"


class MappedTaskGroup(TaskGroup):
    """A task group expanded at run time: each of its tasks gets one instance per element of the group's input
    (map index ``i`` of every task belongs to element ``i``), as Airflow's mapped task groups.

    Inside the group, a task's instance ``i`` depends on instance ``i`` of the group's other tasks (trigger
    rules and XComArgs alike); from outside, a task of the group reads as a mapped task: a downstream task
    waits for every instance and receives the list of their values.
    """

    def __init__(
        self,
        group_id: str,
        *,
        expand_input: dict[str, Any] | None,
        expand_kwargs_input: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(group_id, **kwargs)
        if self.parent_group is not None and self.parent_group.mapped_group() is not None:
            raise DagDefinitionError(
                f"task group {self.group_id!r}: a mapped task group inside a mapped task group is not supported; "
                "map the outer group over the combined inputs instead"
            )
        self.expand_input = expand_input
        self.expand_kwargs_input = expand_kwargs_input

    def mapped_group(self) -> MappedTaskGroup:
        return self

    def iter_xcom_args(self) -> list[XComArg]:
        """The upstream outputs the group's expansion reads."""
        from zonda.xcom_arg import find_xcom_args

        return find_xcom_args([self.expand_input or {}, self.expand_kwargs_input])

    def expansion(self, resolve: Callable[[Any], Any]) -> list[dict[str, Any]]:
        """The group's arguments for each map index (see :func:`zonda.operators.base.expand_arguments`)."""
        from zonda.operators.base import expand_arguments

        return expand_arguments(self.group_id, self.expand_input, self.expand_kwargs_input, resolve)


class MappedArgument:
    """A parameter of a mapped ``@task_group`` function, standing for one element of the group's input.

    Passed to a task inside the group, it becomes that element for each map index: a value that came from
    data (an upstream output) is never rendered as a template, a literal from the DAG file is, as any other
    argument. ``arg["key"]`` picks a key of a dict element.
    """

    def __init__(self, group: MappedTaskGroup, name: str, path: tuple[Any, ...] = ()) -> None:
        self.group = group
        self.name = name
        self.path = path

    def __getitem__(self, key: Any) -> MappedArgument:
        return MappedArgument(self.group, self.name, (*self.path, key))

    def pick(self, arguments: dict[str, Any]) -> Any:
        """This argument's value among one map index's ``arguments``."""
        from zonda.xcom_arg import ResolvedValue

        value = arguments[self.name]
        for key in self.path:
            value = ResolvedValue(value.value[key]) if isinstance(value, ResolvedValue) else value[key]
        return value

    def __iter__(self) -> Any:
        raise TypeError(
            f"argument {self.name!r} of mapped task group {self.group.group_id!r} is not known until the group "
            "expands, so it cannot be iterated while the DAG is defined; pass it to a task"
        )

    def __repr__(self) -> str:
        return f"MappedArgument({self.group.group_id!r}, {self.name!r})"


class TaskGroupDecorator:
    """A ``@task_group`` function: call it to build the group once, or map it with ``.expand()``,
    ``.partial(...).expand(...)`` or ``.expand_kwargs(...)`` to build one group instance per element."""

    def __init__(self, function: Callable[..., Any], group_kwargs: dict[str, Any], partial: dict[str, Any]) -> None:
        self.function = function
        self.group_kwargs = group_kwargs
        self.partial_kwargs = partial
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._build(TaskGroup, {}, args, kwargs)

    def override(self, **group_kwargs: Any) -> TaskGroupDecorator:
        return TaskGroupDecorator(self.function, {**self.group_kwargs, **group_kwargs}, self.partial_kwargs)

    def partial(self, **kwargs: Any) -> TaskGroupDecorator:
        self._check_names(kwargs, "partial")
        return TaskGroupDecorator(self.function, self.group_kwargs, {**self.partial_kwargs, **kwargs})

    def expand(self, **mapped: Any) -> Any:
        from zonda.operators.base import check_mappable

        if not mapped:
            raise DagDefinitionError(f"task group {self.function.__name__!r}: expand() needs at least one argument")
        self._check_names(mapped, "expand")
        for key, value in mapped.items():
            if key in self.partial_kwargs:
                raise DagDefinitionError(
                    f"task group {self.function.__name__!r}: {key!r} is given to both partial() and expand()"
                )
            check_mappable(self.function.__name__, key, value)
        return self._build(MappedTaskGroup, {"expand_input": dict(mapped)}, (), dict(self.partial_kwargs), mapped)

    def expand_kwargs(self, value: Any) -> Any:
        from zonda.operators.base import check_mappable

        check_mappable(self.function.__name__, "expand_kwargs", value)
        names = [n for n in inspect.signature(self.function).parameters if n not in self.partial_kwargs]
        return self._build(
            MappedTaskGroup,
            {"expand_input": None, "expand_kwargs_input": value},
            (),
            dict(self.partial_kwargs),
            dict.fromkeys(names),
        )

    def _check_names(self, given: dict[str, Any], method: str) -> None:
        parameters = inspect.signature(self.function).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return
        unknown = sorted(set(given) - set(parameters))
        if unknown:
            raise DagDefinitionError(
                f"task group {self.function.__name__!r}: {method}() got {', '.join(map(repr, unknown))}, which "
                f"the function does not take; its parameters: {', '.join(parameters) or '(none)'}"
            )

    def _build(
        self,
        group_class: type[TaskGroup],
        extra: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mapped_names: dict[str, Any] | None = None,
    ) -> Any:
        options = {**self.group_kwargs, **extra}
        group_id = options.pop("group_id", None) or self.function.__name__
        dag = _context_stack.current_dag()
        if dag is not None:
            group_id = dag._unique_group_id(group_id, _context_stack.current_group())
        if self.function.__doc__ and "tooltip" not in options:
            options["tooltip"] = self.function.__doc__.strip().splitlines()[0]
        with group_class(group_id, **options) as group:
            if isinstance(group, MappedTaskGroup):
                kwargs.update({name: MappedArgument(group, name) for name in mapped_names or {}})
            result = self.function(*args, **kwargs)
        if isinstance(group, MappedTaskGroup):
            for arg in group.iter_xcom_args():
                for root in group.roots:
                    arg.operator.set_downstream(root)
        if isinstance(result, DependencyMixin):
            return result
        return group


def task_group(python_callable: Callable[..., Any] | None = None, **group_kwargs: Any) -> Any:
    """``@task_group``: calling the decorated function builds a TaskGroup around what it creates.

    Returns what the function returns when that is a task or XComArg (so it can feed the next task), else the
    group itself. ``.expand()``, ``.partial()`` and ``.expand_kwargs()`` map the whole group (see
    :class:`MappedTaskGroup`).
    """

    def decorate(fn: Callable[..., Any]) -> TaskGroupDecorator:
        return TaskGroupDecorator(fn, group_kwargs, {})

    return decorate(python_callable) if python_callable is not None else decorate
