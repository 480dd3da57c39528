"""Task groups: a named set of tasks whose ids are prefixed with the group id (``group.task``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zonda import _context_stack
from zonda.dependencies import DependencyMixin
from zonda.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.operators.base import Node


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


def task_group(python_callable: Callable[..., Any] | None = None, **group_kwargs: Any) -> Any:
    """``@task_group``: calling the decorated function builds a TaskGroup around what it creates.

    Returns what the function returns when that is a task or XComArg (so it can feed the next task), else the
    group itself.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def build(*args: Any, **kwargs: Any) -> Any:
            options = dict(group_kwargs)
            group_id = options.pop("group_id", None) or fn.__name__
            dag = _context_stack.current_dag()
            if dag is not None:
                group_id = dag._unique_group_id(group_id, _context_stack.current_group())
            if fn.__doc__ and "tooltip" not in options:
                options["tooltip"] = fn.__doc__.strip().splitlines()[0]
            with TaskGroup(group_id, **options) as group:
                result = fn(*args, **kwargs)
            if isinstance(result, DependencyMixin):
                return result
            return group

        return build

    return decorate(python_callable) if python_callable is not None else decorate
