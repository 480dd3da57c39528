"""Wiring tasks together: ``>>``, ``<<``, lists of tasks, task groups, XComArgs, and :func:`chain`.

Anything that can sit on either side of ``>>`` implements :class:`DependencyMixin`: it names its ``roots``
(where an incoming edge lands) and its ``leaves`` (where an outgoing edge starts). A single task is its own
root and leaf; a task group's roots are its tasks without upstream inside the group.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.operators.base import Node


class DependencyMixin:
    """Operators, mapped operators, task groups and XComArgs share this dependency algebra."""

    @property
    def roots(self) -> list[Node]:
        raise NotImplementedError

    @property
    def leaves(self) -> list[Node]:
        raise NotImplementedError

    def set_downstream(self, other: DependencyMixin | Sequence[DependencyMixin]) -> None:
        from zonda.edgemodifier import Label

        for target in _as_list(other):
            if isinstance(target, Label):  # ``a >> Label("x")``: the label links a once its right side is known
                target.add_upstream(self)
                continue
            for leaf in self.leaves:
                for root in target.roots:
                    leaf._link_downstream(root)

    def set_upstream(self, other: DependencyMixin | Sequence[DependencyMixin]) -> None:
        for source in _as_list(other):
            source.set_downstream(self)

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> DependencyMixin:
        # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> DependencyMixin:
        # [a, b] << self
        self.set_downstream(other)
        return self


def _as_list(value: Any) -> list[DependencyMixin]:
    if isinstance(value, DependencyMixin):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = list(value)
        for item in items:
            if not isinstance(item, DependencyMixin):
                raise TypeError(f"cannot set a dependency on {item!r}: expected a task, task group or XComArg")
        return items
    raise TypeError(f"cannot set a dependency on {value!r}: expected a task, task group, XComArg or a list of them")


def chain(*elements: DependencyMixin | Sequence[DependencyMixin]) -> None:
    """Link elements one after another. Two adjacent lists of equal length are linked pairwise, as in Airflow.

    ``chain(a, [b, c], d)`` is ``a >> [b, c] >> d``; ``chain([a, b], [c, d])`` is ``a >> c`` and ``b >> d``.
    """
    for left, right in itertools.pairwise(elements):
        left_is_list = not isinstance(left, DependencyMixin)
        right_is_list = not isinstance(right, DependencyMixin)
        if left_is_list and right_is_list:
            left_items, right_items = _as_list(left), _as_list(right)
            if len(left_items) != len(right_items):
                raise ValueError(
                    f"chain() links adjacent lists pairwise, so they must have the same length; "
                    f"got {len(left_items)} and {len(right_items)}"
                )
            for a, b in zip(left_items, right_items, strict=True):
                a.set_downstream(b)
        elif left_is_list:
            for a in _as_list(left):
                a.set_downstream(right)
        else:
            left.set_downstream(right)


def chain_linear(*elements: DependencyMixin | Sequence[DependencyMixin]) -> None:
    """Link each element to every task of the next, as Airflow's ``chain_linear``:
    ``chain_linear(a, [b, c], [d, e])`` is ``a >> [b, c]``, then each of b and c ``>> [d, e]``."""
    if len(elements) < 2:
        raise ValueError("chain_linear() needs at least two elements to link")
    for left, right in itertools.pairwise(elements):
        for source in _as_list(left):
            source.set_downstream(_as_list(right))


def cross_downstream(
    from_tasks: Sequence[DependencyMixin], to_tasks: DependencyMixin | Sequence[DependencyMixin]
) -> None:
    """Make every task of ``from_tasks`` upstream of every task of ``to_tasks``."""
    for source in _as_list(from_tasks):
        source.set_downstream(_as_list(to_tasks))
