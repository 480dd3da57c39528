"""What changed in the metastore since a moment: the one query behind the web server's live updates.

Why one statement for three tables: the web server polls this once a second for every open tab together, and
the issue bounds that to one metastore query per second; a ``UNION ALL`` of three range scans on the
``updated_at`` indexes (migration 0008) answers "task instances, runs and DAGs changed after T" in one round trip,
however long the history is. ``limit`` bounds the answer; a caller that gets ``limit`` rows knows it may have
missed some and tells its readers to load everything again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, case, cast, literal, null, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from zonda.exceptions import MetastoreError
from zonda.metastore import tables as t
from zonda.metastore.retry import short_error


@dataclass(frozen=True)
class Change:
    """One row that changed: a task instance (``ti``), a DAG run (``run``) or a DAG (``dag``, whose state is
    ``paused``, ``active`` or ``inactive``). Fields that do not apply to the kind are None."""

    kind: str
    dag_id: str
    run_id: str | None
    task_id: str | None
    map_index: int | None
    state: str | None
    try_number: int | None
    #: When the row changed (the writer's clock); not sent to browsers.
    updated_at: datetime

    @property
    def key(self) -> tuple[Any, ...]:
        """Which row this is: the same key for every change of the same task instance, run or DAG."""
        return (self.kind, self.dag_id, self.run_id, self.task_id, self.map_index)

    @property
    def signature(self) -> tuple[Any, ...]:
        """What a watcher sees of the row: a new ``updated_at`` with the same signature (a heartbeat, a parse)
        is no news."""
        return (self.state, self.try_number)

    def as_json(self) -> dict[str, Any]:
        """What a browser is sent: every field but ``updated_at``."""
        return {name: value for name, value in asdict(self).items() if name != "updated_at"}


def changes_since(engine: Any, since: datetime, *, limit: int) -> list[Change]:
    """Task instances, DAG runs and DAGs whose ``updated_at`` is after ``since``, oldest first, at most
    ``limit`` of them. A task instance's state "none" (SQL NULL) reads as ``"none"``. A failed read (an outage)
    raises :class:`~zonda.exceptions.MetastoreError`."""
    ti, run, dag = t.task_instance, t.dag_run, t.dag
    no_text, no_int = cast(null(), String), cast(null(), Integer)
    dag_state = case((dag.c.is_active.is_(False), "inactive"), (dag.c.is_paused.is_(True), "paused"), else_="active")
    query = union_all(
        select(
            literal("ti").label("kind"),
            ti.c.dag_id,
            ti.c.run_id,
            ti.c.task_id,
            ti.c.map_index,
            ti.c.state,
            ti.c.try_number,
            ti.c.updated_at,
        ).where(ti.c.updated_at > since),
        select(
            literal("run"), run.c.dag_id, run.c.run_id, no_text, no_int, run.c.state, no_int, run.c.updated_at
        ).where(run.c.updated_at > since),
        select(literal("dag"), dag.c.dag_id, no_text, no_text, no_int, dag_state, no_int, dag.c.updated_at).where(
            dag.c.updated_at > since
        ),
    )
    ordered = query.order_by(query.selected_columns.updated_at).limit(limit)
    try:
        with engine.connect() as conn:
            rows = conn.execute(ordered).all()
    except SQLAlchemyError as exc:
        raise MetastoreError(f"reading the changes failed: {short_error(exc)}") from exc
    return [
        Change(
            kind=row.kind,
            dag_id=row.dag_id,
            run_id=row.run_id,
            task_id=row.task_id,
            map_index=row.map_index,
            state=row.state if row.state is not None else ("none" if row.kind == "ti" else None),
            try_number=row.try_number,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


__all__ = ["Change", "changes_since"]
