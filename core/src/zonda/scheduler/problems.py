"""One DAG's scheduling problem stays that DAG's: logged with its id, shown on its row, never fatal.

The scheduler builds and decides runs from serialized DAGs it did not write: an older Zonda may have stored a
schedule that cannot fire, a plugin timetable may be missing or raise, a stored DAG may not load. Any such
error while creating or deciding one DAG's runs is handed here. It is logged once with the DAG id and the
traceback (a repeat of the same error only every :data:`REPEAT_LOG_SECONDS`, so a broken DAG cannot flood the
log from a loop that runs many times a second), written to ``dag.scheduling_error`` where
``zonda dags list-import-errors`` shows it, and cleared once the same work succeeds again.

Rows are written by :meth:`DagProblems.flush`, which the scheduler calls between its transactions: a problem is
usually found inside a transaction that holds the DAG's row locked (``FOR UPDATE``), which a second transaction
from the same process would wait on forever.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from zonda.metastore import tables as t

log = logging.getLogger("zonda.scheduler")

#: How often an unchanged problem of one DAG is logged again (seconds).
REPEAT_LOG_SECONDS = 300.0
#: Longest message kept on the DAG row.
_MAX_MESSAGE = 2000


@dataclass
class _Seen:
    message: str
    logged_at: float
    repeats: int = 0


def describe(what: str, exc: BaseException) -> str:
    """The one-line message users see for a DAG the scheduler cannot handle."""
    from zonda.masking import get_masker

    detail = get_masker().redact_text(
        f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    )
    text = (
        f"the scheduler cannot {what}: {detail}; fix the DAG's schedule (or timetable) and the DAG processor "
        "stores the new version; the scheduler goes on with the other DAGs meanwhile"
    )
    return text[:_MAX_MESSAGE]


class DagProblems:
    """What failed, by DAG id and kind of work (``create runs``, ``decide runs``, ``load``)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._failing: dict[str, dict[str, _Seen]] = {}
        #: DAG ids whose row holds a message (read at start, kept up to date), so clearing costs nothing
        #: for the DAGs that never had a problem.
        self._recorded: set[str] = set()
        #: Row writes not flushed yet: DAG id -> message (None clears).
        self._pending: dict[str, str | None] = {}

    def load(self) -> None:
        with self.engine.connect() as conn:
            self._recorded = set(
                conn.execute(select(t.dag.c.dag_id).where(t.dag.c.scheduling_error.is_not(None))).scalars()
            )

    def report(self, dag_id: str, kind: str, what: str, exc: BaseException) -> None:
        """Log (rate-limited) and record that ``what`` failed for ``dag_id``. Never raises."""
        message = describe(what, exc)
        kinds = self._failing.setdefault(dag_id, {})
        seen = kinds.get(kind)
        now = time.monotonic()
        if seen is None or seen.message != message:
            log.error("DAG %s: %s", dag_id, message, exc_info=exc)
            kinds[kind] = _Seen(message, now)
            self._record(dag_id, message)
            return
        seen.repeats += 1
        if now - seen.logged_at >= REPEAT_LOG_SECONDS:
            log.error("DAG %s: still failing (%d times since last logged): %s", dag_id, seen.repeats, message)
            seen.logged_at, seen.repeats = now, 0

    def clear(self, dag_id: str, kind: str) -> None:
        """``kind`` of work succeeded for ``dag_id``: forget its problem; clear the row once none is left."""
        kinds = self._failing.get(dag_id)
        if kinds and kinds.pop(kind, None) is not None:
            log.info("DAG %s: the scheduler can %s again", dag_id, kind)
        if kinds:
            return
        self._failing.pop(dag_id, None)
        if dag_id in self._recorded or self._pending.get(dag_id) is not None:
            self._record(dag_id, None)

    def _record(self, dag_id: str, message: str | None) -> None:
        self._pending[dag_id] = message

    def flush(self) -> None:
        """Write the pending row changes in one transaction of their own. Never raises: a failed write stays
        pending for the next flush, and the log already has the problem."""
        if not self._pending:
            return
        pending = dict(self._pending)
        try:
            with self.engine.begin() as conn:
                for dag_id, message in pending.items():
                    conn.execute(update(t.dag).where(t.dag.c.dag_id == dag_id).values(scheduling_error=message))
        except Exception as exc:  # recording is best effort; retried at the next flush
            log.warning("could not record the DAGs' scheduling problems: %s", type(exc).__name__)
            return
        for dag_id, message in pending.items():
            if self._pending.get(dag_id, message) == message:
                self._pending.pop(dag_id, None)
            if message is None:
                self._recorded.discard(dag_id)
            else:
                self._recorded.add(dag_id)
