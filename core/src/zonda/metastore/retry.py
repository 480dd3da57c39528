"""Riding out metastore trouble: lock conflicts, dropped connections and outages.

With several schedulers and many task processes writing ``task_instance`` at once, a database may abort one
transaction to break a cycle: InnoDB (MariaDB/MySQL) reports a deadlock (1213) or a lock wait timeout (1205),
PostgreSQL a deadlock (40P01) or a serialization failure (40001), SQLite "database is locked". Such an error
says nothing about the data: the transaction was rolled back whole and running it again is the documented
remedy. A connection the server dropped (a restart, ``pg_terminate_backend``) and a server that cannot be
reached at all (stopped, restarting) are treated the same way: SQLAlchemy invalidates the connection and the
retry gets a fresh one. Every other error propagates at once.

Three levels use this:

- :func:`retry_transient` retries one transaction a few times within about half a second (a lock conflict);
- :func:`retry_for` retries one write for a configurable window (a task process recording its end state
  while the database restarts: ``[database] task_end_state_retry_timeout``);
- :class:`OutageGuard` keeps a daemon's loop (scheduler, triggerer, DAG processor) alive through an outage of
  any length: bounded exponential backoff with jitter (``[database] outage_backoff_max``), one log line when
  the outage starts and one when it ends, never one per retry.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("zonda.metastore")

T = TypeVar("T")

_MYSQL_CODES = frozenset({1205, 1213})
_POSTGRES_CODES = frozenset({"40P01", "40001"})
#: PostgreSQL's "the server is going away or not there yet": admin shutdown, crash shutdown, cannot connect now.
_POSTGRES_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03"})
#: PyMySQL's client errors for a server that is down or went away.
_MYSQL_UNAVAILABLE = frozenset({2003, 2006, 2013})


def is_transient(exc: BaseException) -> bool:
    """True when running the transaction again may work: a lock conflict the database resolved by rolling the
    transaction back, a connection the server dropped, or a server that cannot be reached right now."""
    from sqlalchemy.exc import DBAPIError

    from zonda.metastore.engine import MetastoreUnreachable

    if isinstance(exc, MetastoreUnreachable):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the server restarted or dropped us: the pool reconnects on the retry
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _POSTGRES_CODES or code in _POSTGRES_UNAVAILABLE:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and (args[0] in _MYSQL_CODES or args[0] in _MYSQL_UNAVAILABLE):
        return True
    return "database is locked" in str(orig)


def retry_transient(fn: Callable[[], T], *, what: str, attempts: int = 6, first_delay: float = 0.01) -> T:
    """Run ``fn`` (one whole transaction) again after a transient error, up to ``attempts`` times.

    The delay doubles each time (10 ms .. 320 ms with the defaults), so the last try comes ~0.6 s after the
    first; the final error propagates. Retries are logged at debug level: a conflict that resolves is routine,
    and one that does not is reported by whoever gives up (a daemon's :class:`OutageGuard`, once per outage)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            log.debug("%s: %s; retrying (%d/%d)", what, short_error(exc), attempt, attempts - 1)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def retry_for(fn: Callable[[], T], *, what: str, timeout: float, max_delay: float = 5.0) -> T:
    """Run ``fn`` again after transient errors until it works or ``timeout`` seconds passed (then the last error
    propagates). For a write that must not be lost to a database restart, such as a task's end state: the
    process waits for the database rather than giving up after half a second. One warning when the database
    first fails, one line when it answers again."""
    backoff = Backoff(first_delay=0.05, max_delay=max_delay)
    deadline = time.monotonic() + max(timeout, 0.0)
    failed_since: float | None = None
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
            if failed_since is None:
                failed_since = time.monotonic()
                log.warning("%s: metastore unavailable (%s); retrying for up to %g s", what, short_error(exc), timeout)
            time.sleep(min(backoff.next_delay(), max(deadline - time.monotonic(), 0.0)))
            continue
        if failed_since is not None:
            log.warning("%s: metastore available again after %.1f s", what, time.monotonic() - failed_since)
        return result


class Backoff:
    """Bounded exponential backoff with jitter: each delay doubles up to ``max_delay``, then is scaled by a
    random factor in [0.5, 1] so processes that lost the database together do not reconnect in lockstep."""

    def __init__(self, *, first_delay: float = 0.1, max_delay: float = 10.0) -> None:
        self.first_delay = max(first_delay, 0.001)
        self.max_delay = max(max_delay, self.first_delay)
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.first_delay * (2 ** min(self._attempt, 32)), self.max_delay)
        self._attempt += 1
        return ceiling * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._attempt = 0


class OutageGuard:
    """Keeps a daemon's loop going through metastore outages.

    The loop calls :meth:`failed` with an exception that escaped a pass: a non-transient one is raised again
    (a bug must not be hidden), a transient one starts or continues an outage: logged once, then the guard
    waits (backoff with jitter, cut short by ``stop``). The loop calls :meth:`succeeded` after a pass that
    worked, which ends the outage with one line saying how long it lasted. :meth:`quiet_for` tells how long
    the database has been reachable since the last outage (a scheduler gives processes that could not
    heartbeat during it time to report in before declaring them dead)."""

    def __init__(
        self,
        name: str,
        *,
        max_delay: float = 10.0,
        first_delay: float = 0.1,
        stop: threading.Event | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.backoff = Backoff(first_delay=first_delay, max_delay=max_delay)
        self.stop = stop or threading.Event()
        self.log = logger or log
        self.down_since: float | None = None
        self.back_at: float | None = None
        self.outages = 0

    def failed(self, exc: BaseException) -> None:
        if not is_transient(exc):
            raise exc
        if self.down_since is None:
            self._outage_starts(
                "%s: metastore unavailable (%s); retrying with backoff (up to %g s apart) until it is back",
                self.name,
                short_error(exc),
                self.backoff.max_delay,
            )
        self.stop.wait(self.backoff.next_delay())

    def _outage_starts(self, message: str, *args: object) -> None:
        self.down_since = time.monotonic()
        self.outages += 1
        self.log.warning(message, *args)

    def until_available(self, start: Callable[[], T], *, url: str) -> T | None:
        """Run ``start`` (a service's first steps on the metastore at ``url``) until it works, and return what
        it returns; None when ``stop`` is set first.

        A service started while its database is down (a host booting, the server restarting) waits for it
        instead of failing: one line names the (password-masked) URL, then the guard backs off as in an outage
        and says when the database answered. An error that no wait can mend (a URL of an unknown dialect or bad
        syntax, a schema that needs ``zonda db migrate``) is raised at once."""
        from zonda.metastore.engine import redact_url

        while not self.stop.is_set():
            try:
                result = start()
            except Exception as exc:
                if self.down_since is None and is_transient(exc):
                    self._outage_starts(
                        "%s: metastore unreachable at %s; retrying every %g s at most until it answers (%s)",
                        self.name,
                        redact_url(url),
                        self.backoff.max_delay,
                        getattr(exc, "reason", None) or short_error(exc),
                    )
                self.failed(exc)
                continue
            self.succeeded()
            return result
        return None

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        self.log.warning(
            "%s: metastore available again after %.1f s; carrying on", self.name, time.monotonic() - self.down_since
        )
        self.down_since = None
        self.back_at = time.monotonic()
        self.backoff.reset()

    def quiet_for(self) -> float:
        """Seconds since the metastore came back from the last outage (infinite when there was none; zero
        during one)."""
        if self.down_since is not None:
            return 0.0
        if self.back_at is None:
            return float("inf")
        return time.monotonic() - self.back_at


def short_error(exc: BaseException) -> str:
    """The error's type and first line (no traceback, no URL: the engine's errors are redacted already)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig)
    return f"{type(orig).__name__}: {text.splitlines()[0] if text else ''}"
