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

    # ``with teardown_task.as_teardown(setups=setup_task): work()``: the tasks made in the block go between them.

    def __enter__(self) -> Self:
        operators = self._operators()
        if not all(op.is_setup or op.is_teardown for op in operators):
            names = ", ".join(repr(op.task_id) for op in operators)
            raise DagDefinitionError(
                f"task {names} is used as a context manager but is neither a setup nor a teardown; "
                "call .as_setup() or .as_teardown(setups=...) on it first"
            )
        self._known_before = {op.task_id: set(op.dag.task_dict) if op.dag else set() for op in operators}
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        for operator in self._operators():
            before = self._known_before.pop(operator.task_id, set())
            if operator.dag is not None:
                _surround(operator, [t for t_id, t in operator.dag.task_dict.items() if t_id not in before])


def _surround(operator: Node, inside: list[Node]) -> None:
    """Put the tasks made inside ``with operator:`` after the setups and before the teardowns of the pair."""
    if not inside:
        return
    ids = {t.task_id for t in inside}
    roots = [t for t in inside if not t.upstream_task_ids & ids]
    leaves = [t for t in inside if not t.downstream_task_ids & ids]
    dag = operator.dag
    assert dag is not None
    if operator.is_teardown:
        setups = [dag.task_dict[u] for u in sorted(operator.upstream_task_ids) if dag.task_dict[u].is_setup]
        teardowns = [operator]
    else:
        setups = [operator]
        teardowns = [dag.task_dict[d] for d in sorted(operator.downstream_task_ids) if dag.task_dict[d].is_teardown]
    for setup_task in setups:
        for root in roots:
            setup_task._link_downstream(root)
    for leaf in leaves:
        for teardown_task in teardowns:
            leaf._link_downstream(teardown_task)


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
