"""Retrying metastore transactions that lost a lock race.

With several schedulers and many task processes writing ``task_instance`` at once, a database may abort one
transaction to break a cycle: InnoDB (MariaDB/MySQL) reports a deadlock (1213) or a lock wait timeout (1205),
PostgreSQL a deadlock (40P01) or a serialization failure (40001), SQLite "database is locked". Such an error
says nothing about the data: the transaction was rolled back whole and running it again is the documented
remedy. A connection the server dropped (a restart) is treated the same way: SQLAlchemy invalidates it and the
retry gets a fresh one. Every other error propagates at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("zonda.metastore")

T = TypeVar("T")

_MYSQL_CODES = frozenset({1205, 1213})
_POSTGRES_CODES = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a lock conflict the database resolved by rolling the transaction back."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the server restarted or dropped us: the pool reconnects on the retry
        return True
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _POSTGRES_CODES or getattr(orig, "pgcode", None) in _POSTGRES_CODES:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return True
    return "database is locked" in str(orig)


def retry_transient(fn: Callable[[], T], *, what: str, attempts: int = 6, first_delay: float = 0.01) -> T:
    """Run ``fn`` (one whole transaction) again after a transient lock conflict, up to ``attempts`` times.

    The delay doubles each time (10 ms .. 320 ms with the defaults), so the last try comes ~0.6 s after the
    first; the final error propagates."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            log.warning("%s: %s; retrying (%d/%d)", what, _short(exc), attempt, attempts - 1)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"
