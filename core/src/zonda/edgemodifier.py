"""Edge labels: ``a >> Label("when valid") >> b`` links ``a`` to ``b`` and names that edge in the graph view.

A :class:`Label` sits between two sides of ``>>`` without being a task: it remembers the leaves on its left
and, once something is put on its right, links each of them to that side's roots and records the label on
each new edge (``DAG.edge_info``), as Airflow's ``EdgeModifier`` does. The label is only shown, never run or
rendered as a template.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from zonda.dependencies import DependencyMixin, _as_list

if TYPE_CHECKING:
    from zonda.operators.base import Node


class Label(DependencyMixin):
    """A label for the edges between what is upstream of it and what is downstream of it."""

    def __init__(self, label: str) -> None:
        if not isinstance(label, str):
            raise TypeError(f"Label() takes a string, not {type(label).__name__}")
        self.label = label
        self._upstream: list[Node] = []
        self._downstream: list[Node] = []

    @property
    def roots(self) -> list[Node]:
        return list(self._upstream)

    @property
    def leaves(self) -> list[Node]:
        return list(self._upstream)

    def add_upstream(self, source: DependencyMixin) -> None:
        """``source >> label``: keep ``source``'s leaves; link them to anything already on the right."""
        new = [leaf for leaf in source.leaves if leaf not in self._upstream]
        self._upstream.extend(new)
        for leaf in new:
            for root in self._downstream:
                self._link(leaf, root)

    def set_downstream(self, other: DependencyMixin | Sequence[DependencyMixin]) -> None:
        for target in _as_list(other):
            for root in target.roots:
                if root not in self._downstream:
                    self._downstream.append(root)
                for leaf in self._upstream:
                    self._link(leaf, root)

    def set_upstream(self, other: DependencyMixin | Sequence[DependencyMixin]) -> None:
        for source in _as_list(other):
            self.add_upstream(source)

    def _link(self, leaf: Node, root: Node) -> None:
        leaf._link_downstream(root)
        assert leaf.dag is not None
        leaf.dag.set_edge_label(leaf.task_id, root.task_id, self.label)

    def __repr__(self) -> str:
        return f"Label({self.label!r})"


__all__ = ["Label"]
