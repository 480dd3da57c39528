"""Keeps ``dag_tag`` (one row per tag) equal to a DAG's tags whenever its ``dag`` row is written.

Both writers of ``dag`` rows call it in their transaction: the DAG processor (:mod:`zonda.dag_processing.writer`)
and ``zonda dags test`` (:mod:`zonda.runner.store`). The rows make a grant by tag an indexed ``EXISTS``
(:mod:`zonda.operations.dag_grants`). Core only, no ORM.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from zonda.metastore.tables import ID_LENGTH, dag_tag


def replace_dag_tags(conn: Any, dag_id: str, tags: Iterable[Any]) -> None:
    """Make ``dag_id``'s ``dag_tag`` rows exactly ``tags`` (duplicates once; over-long tags cut to the column)."""
    from sqlalchemy import delete, insert

    names = list(dict.fromkeys(str(tag)[:ID_LENGTH] for tag in tags or ()))
    conn.execute(delete(dag_tag).where(dag_tag.c.dag_id == dag_id))
    if names:
        conn.execute(insert(dag_tag), [{"dag_id": dag_id, "name": name} for name in names])


__all__ = ["replace_dag_tags"]
