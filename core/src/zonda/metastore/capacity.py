"""How many more connections the database server accepts, so a scheduler can say so before it runs out.

A LocalExecutor task process holds its own metastore connection while it lives (up to ``[core] parallelism``
at once), next to the scheduler's pool, the DAG processor and the triggerer. A server that allows fewer refuses
connections in the middle of a run ("too many clients"), which is much harder to read than a warning at start.
SQLite has no such limit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text


def connection_headroom(engine: Any) -> tuple[int, int] | None:
    """``(max_connections, in use)`` on PostgreSQL and MySQL/MariaDB; None elsewhere or when not readable."""
    name = engine.dialect.name
    if name == "postgresql":
        limit_sql = "SHOW max_connections"
        used_sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    elif name in ("mysql", "mariadb"):
        limit_sql = "SELECT @@max_connections"
        used_sql = "SELECT count(*) FROM information_schema.processlist"
    else:
        return None
    try:
        with engine.connect() as conn:
            limit = int(conn.execute(text(limit_sql)).scalar_one())
            used = int(conn.execute(text(used_sql)).scalar_one())
    except Exception:  # no privilege to look: say nothing rather than guess
        return None
    return limit, used


def connection_budget_warning(engine: Any, needed: int, what: str) -> str | None:
    """A message naming the problem and the fixes when ``needed`` more connections would not fit, else None."""
    headroom = connection_headroom(engine)
    if headroom is None:
        return None
    limit, used = headroom
    free = limit - used
    if needed <= free:
        return None
    return (
        f"{what} may open up to {needed} database connections, but the server allows {limit} and {used} are in "
        f"use ({free} free); tasks would then fail with 'too many connections'. Lower [core] parallelism, raise "
        "the server's max_connections, or put a connection pooler (such as PgBouncer) in front of it"
    )
