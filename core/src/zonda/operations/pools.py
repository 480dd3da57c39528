"""Pools: named slot limits shared by every DAG (table ``slot_pool``), with the slots in use.

Called by ``zonda pools set | list | delete``, by :mod:`zonda.operations.why` (is the task's pool full?) and by
the web server and API. Slots in use are counted as the scheduler counts them: the ``pool_slots`` of the pool's
queued and running task instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from zonda.exceptions import Conflict, NotFound, OperationError
from zonda.metastore import tables as t
from zonda.state import ACTIVE_STATES, sql_values

DEFAULT_POOL = "default_pool"
#: Task-instance states that hold pool slots (the scheduler counts the same ones).
SLOT_HOLDING_STATES = sql_values(ACTIVE_STATES)
MAX_NAME_LENGTH = 256


@dataclass(frozen=True)
class PoolRecord:
    pool: str
    slots: int
    running: int
    queued: int
    description: str | None

    @property
    def used_slots(self) -> int:
        return self.running + self.queued

    @property
    def open_slots(self) -> int:
        return self.slots - self.used_slots


def slots_in_use(conn: Any) -> dict[tuple[str, str], int]:
    """(pool, state) -> slots held by the pool's queued and running instances."""
    ti = t.task_instance
    rows = conn.execute(
        select(ti.c.pool, ti.c.state, func.coalesce(func.sum(ti.c.pool_slots), 0))
        .where(ti.c.state.in_(SLOT_HOLDING_STATES))
        .group_by(ti.c.pool, ti.c.state)
    ).all()
    return {(pool, state): int(n) for pool, state, n in rows}


def _record(row: Any, used: dict[tuple[str, str], int]) -> PoolRecord:
    return PoolRecord(
        pool=row.pool,
        slots=row.slots,
        running=used.get((row.pool, "running"), 0),
        queued=used.get((row.pool, "queued"), 0),
        description=row.description,
    )


def list_pools(engine: Any) -> list[PoolRecord]:
    """Every pool by name, with the slots its queued and running instances hold."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.pool).order_by(t.pool.c.pool)).all()
        used = slots_in_use(conn)
    return [_record(row, used) for row in rows]


def get_pool(engine: Any, name: str) -> PoolRecord:
    with engine.connect() as conn:
        row = conn.execute(select(t.pool).where(t.pool.c.pool == name)).first()
        if row is None:
            raise _unknown(conn, name)
        used = slots_in_use(conn)
    return _record(row, used)


def _unknown(conn: Any, name: str) -> NotFound:
    from zonda.suggestions import did_you_mean

    known = [r[0] for r in conn.execute(select(t.pool.c.pool))]
    hint = did_you_mean(name, known)
    return NotFound(f"there is no pool {name!r}; {hint + ' ' if hint else ''}`zonda pools list` lists them")


def set_pool(engine: Any, name: str, slots: int, description: str | None = None) -> tuple[PoolRecord, bool]:
    """Create a pool or change its slots (and description when given); returns it and whether it was created.

    0 slots holds every task of the pool. Called by ``zonda pools set`` and the API."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise OperationError("a pool name must be 1 to 256 characters, e.g. zonda pools set api_calls 4")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise OperationError(f"slots must be 0 or more (0 holds every task of the pool), not {slots}")
    with engine.begin() as conn:
        exists = conn.execute(select(t.pool.c.pool).where(t.pool.c.pool == name)).first() is not None
        values: dict[str, object] = {"slots": slots}
        if description is not None:
            values["description"] = description
        if exists:
            conn.execute(update(t.pool).where(t.pool.c.pool == name).values(**values))
        else:
            conn.execute(insert(t.pool).values(pool=name, include_deferred=False, **values))
    return get_pool(engine, name), not exists


def delete_pool(engine: Any, name: str) -> None:
    """Delete a pool. ``default_pool`` is refused (:class:`~zonda.exceptions.Conflict`): tasks without a pool
    use it. Tasks that name a deleted pool are not queued until it exists again."""
    if name == DEFAULT_POOL:
        raise Conflict(
            f"{DEFAULT_POOL} cannot be deleted: tasks without a pool use it; change its size with "
            f"`zonda pools set {DEFAULT_POOL} SLOTS`"
        )
    with engine.begin() as conn:
        result = conn.execute(delete(t.pool).where(t.pool.c.pool == name))
        if not result.rowcount:
            raise _unknown(conn, name)
