"""Setup and teardown tasks, authored as in Airflow: ``as_setup()``, ``as_teardown(setups=...)``, ``@setup`` and
``@teardown``.

A setup makes a resource (a cluster, a table) that work tasks use; its teardown removes it. The point is that
the teardown runs whatever the work tasks did, as long as its setups succeeded (trigger rule
``all_done_setup_success``), and that a teardown's own failure does not fail the DAG run unless it says
``on_failure_fail_dagrun=True``. How these roles change scheduling, the run's final state and clearing is in
:mod:`zonda.setup_teardown_graph`; the decorators are in :mod:`zonda.setup_teardown_decorators`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from zonda.exceptions import DagDefinitionError
from zonda.trigger_rule import TriggerRule

if TYPE_CHECKING:
    from zonda.dependencies import DependencyMixin
    from zonda.operators.base import Node


class SetupTeardownMixin:
    """``as_setup()`` and ``as_teardown()`` on tasks and on task outputs (XComArgs). The roles themselves are
    the attributes ``is_setup``, ``is_teardown`` and ``on_failure_fail_dagrun`` of the task (see ``Node``)."""

    def _operators(self) -> list[Node]:
        raise NotImplementedError

    def as_setup(self) -> Self:
        """Mark this task as a setup; returns it, so ``make_cluster().as_setup() >> work`` reads naturally."""
        for operator in self._operators():
            _mark_setup(operator)
        return self

    def as_teardown(
        self,
        *,
        setups: DependencyMixin | list[DependencyMixin] | None = None,
        on_failure_fail_dagrun: bool | None = None,
    ) -> Self:
        """Mark this task as a teardown (trigger rule ``all_done_setup_success``) of ``setups``, which become
        setups and upstream of it. ``on_failure_fail_dagrun=True`` lets its failure fail the run."""
        for operator in self._operators():
            _mark_teardown(operator, on_failure_fail_dagrun)
        if setups is not None:
            from zonda.dependencies import _as_list

            for setup_task in _as_list(setups):
                as_setup = getattr(setup_task, "as_setup", None)
                if as_setup is None:
                    raise DagDefinitionError(f"setups= takes tasks or task outputs, not {setup_task!r}")
                as_setup()
                setup_task >> self  # type: ignore[operator]
        return self


def _mark_setup(operator: Node) -> None:
    if operator.is_teardown:
        raise DagDefinitionError(f"task {operator.task_id!r} is a teardown and cannot also be a setup")
    operator.is_setup = True


def _mark_teardown(operator: Node, on_failure_fail_dagrun: bool | None) -> None:
    if operator.is_setup:
        raise DagDefinitionError(f"task {operator.task_id!r} is a setup and cannot also be a teardown")
    operator.is_teardown = True
    operator.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
    if on_failure_fail_dagrun is not None:
        operator.on_failure_fail_dagrun = bool(on_failure_fail_dagrun)
