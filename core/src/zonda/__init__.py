"""Zonda: a Python workflow orchestrator.

``import zonda`` is cheap on purpose: the public names below are resolved on first access (PEP 562), so the CLI
and DAG files pay only for what they use. Nothing here reads configuration, opens a database or loads plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zonda.version import __version__

if TYPE_CHECKING:
    from zonda.dag_definition import DAG, dag
    from zonda.decorators import task
    from zonda.dependencies import chain, chain_linear, cross_downstream
    from zonda.edgemodifier import Label
    from zonda.params import Param
    from zonda.plugins import hookimpl
    from zonda.runtime import get_current_context
    from zonda.setup_teardown_decorators import setup, teardown
    from zonda.taskgroup import TaskGroup, task_group
    from zonda.variable import Variable
    from zonda.xcom_arg import XComArg

__all__ = [
    "DAG",
    "Label",
    "Param",
    "TaskGroup",
    "Variable",
    "XComArg",
    "__version__",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "get_current_context",
    "hookimpl",
    "setup",
    "task",
    "task_group",
    "teardown",
]

_LAZY: dict[str, str] = {
    "DAG": "zonda.dag_definition",
    "dag": "zonda.dag_definition",
    "task": "zonda.decorators",
    "Param": "zonda.params",
    "TaskGroup": "zonda.taskgroup",
    "task_group": "zonda.taskgroup",
    "chain": "zonda.dependencies",
    "chain_linear": "zonda.dependencies",
    "cross_downstream": "zonda.dependencies",
    "Label": "zonda.edgemodifier",
    "XComArg": "zonda.xcom_arg",
    "Variable": "zonda.variable",
    "get_current_context": "zonda.runtime",
    "hookimpl": "zonda.plugins",
    "setup": "zonda.setup_teardown_decorators",
    "teardown": "zonda.setup_teardown_decorators",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'zonda' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
