"""Which DAG and task group are being defined right now (``with DAG(...)``, ``with TaskGroup(...)``).

Context variables rather than module globals, so threads and nested definitions stay independent.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.taskgroup import TaskGroup

_dag_stack: ContextVar[tuple[DAG, ...]] = ContextVar("zonda_dag_stack", default=())
_group_stack: ContextVar[tuple[TaskGroup, ...]] = ContextVar("zonda_group_stack", default=())
#: While a DAG file is imported, every DAG created is reported here (so unassigned DAGs are found too).
_collector: ContextVar[list[DAG] | None] = ContextVar("zonda_dag_collector", default=None)


def current_dag() -> DAG | None:
    stack = _dag_stack.get()
    return stack[-1] if stack else None


def push_dag(dag: DAG) -> None:
    _dag_stack.set((*_dag_stack.get(), dag))


def pop_dag() -> None:
    _dag_stack.set(_dag_stack.get()[:-1])


def current_group() -> TaskGroup | None:
    stack = _group_stack.get()
    return stack[-1] if stack else None


def push_group(group: TaskGroup) -> None:
    _group_stack.set((*_group_stack.get(), group))


def pop_group() -> None:
    _group_stack.set(_group_stack.get()[:-1])


def report_new_dag(dag: DAG) -> None:
    collected = _collector.get()
    if collected is not None:
        collected.append(dag)


def start_collecting() -> object:
    return _collector.set([])


def stop_collecting(token: object) -> list[DAG]:
    collected = _collector.get() or []
    _collector.reset(token)  # type: ignore[arg-type]
    return collected
