"""The DAG processor's metastore writes, from parse results (JSON), never from DAG objects.

This mirrors :meth:`zonda.runner.store.MetastoreRunStore.sync_dag` (same columns, same hash check) but works
on what a child process sent back, so the parent never needs the user's module. SQLAlchemy Core on the tables
of :mod:`zonda.metastore.tables`: no ORM import, one short transaction per file.

History is never deleted: a DAG whose file is gone is only marked ``is_active=False``; its runs and task
instances stay, and it becomes active again when a file defines it once more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from zonda.dag_processing.parsing import ParsedDag, ParseResult
    from zonda.metastore.db import Metastore

_CHUNK = 500


@dataclass
class WriteOutcome:
    """What one write changed, by DAG id."""

    created: list[str] = field(default_factory=list)
    serialized: list[str] = field(default_factory=list)  # serialized_dag rewritten (new DAG or hash changed)
    unchanged: list[str] = field(default_factory=list)  # parsed again, same hash: serialized_dag untouched
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)

    def merge(self, other: WriteOutcome) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


class DagWriter:
    """Writes parse results to ``dag``, ``serialized_dag`` and ``import_error``."""

    def __init__(self, metastore: Metastore, *, paused_at_creation: bool = True) -> None:
        """``paused_at_creation``: ``[core] dags_are_paused_at_creation``, for DAGs that do not say."""
        from zonda.metastore import tables

        self.metastore = metastore
        self.paused_at_creation = paused_at_creation
        self.engine = metastore.engine
        self.t = tables

    def store(self, result: ParseResult) -> WriteOutcome:
        """Upsert the file's DAGs, replace its import error, deactivate DAGs it no longer defines.

        A file that failed to import keeps its previous DAGs active (flagged ``has_import_errors``), as in
        Airflow: a typo in a DAG file should not stop the runs of the version that worked.
        """
        from sqlalchemy.exc import IntegrityError

        if result.error is not None:
            from zonda.secrets import mask_stored_text

            # Before the transaction (it reads the metastore's connections): no secret is ever stored.
            result = dataclasses.replace(result, error=mask_stored_text(result.error, metastore=self.metastore))
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    return self._store(conn, result)
            except IntegrityError:
                # Someone else (``zonda dags test``) inserted one of these DAGs meanwhile: the retry updates it.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _store(self, conn: Connection, result: ParseResult) -> WriteOutcome:
        from sqlalchemy import and_, insert, select, update

        from zonda import serde
        from zonda.metastore.dag_tags import replace_dag_tags
        from zonda.pause_at_creation import paused_at_creation
        from zonda.timezone import utcnow

        dag_t, ser_t = self.t.dag, self.t.serialized_dag
        outcome = WriteOutcome()
        now = utcnow()
        ids = [d.dag_id for d in result.dags]
        has_error = result.error is not None
        known = select(dag_t.c.dag_id, dag_t.c.is_active, dag_t.c.tags).where(dag_t.c.dag_id.in_(ids))
        existing = {row.dag_id: row for row in conn.execute(known)}
        hashes = {
            row.dag_id: row.dag_hash
            for row in conn.execute(select(ser_t.c.dag_id, ser_t.c.dag_hash).where(ser_t.c.dag_id.in_(ids)))
        }
        for parsed in result.dags:
            values = _dag_values(parsed, now, has_error, serde.dumps)
            row = existing.get(parsed.dag_id)
            if row is None:
                paused = paused_at_creation(parsed.is_paused_upon_creation, self.paused_at_creation)
                conn.execute(insert(dag_t).values(dag_id=parsed.dag_id, is_paused=paused, **values))
                outcome.created.append(parsed.dag_id)
            else:
                conn.execute(update(dag_t).where(dag_t.c.dag_id == parsed.dag_id).values(**values))
                if not row.is_active:
                    outcome.reactivated.append(parsed.dag_id)
            if row is None or row.tags != values["tags"]:
                replace_dag_tags(conn, parsed.dag_id, parsed.tags)
            current = hashes.get(parsed.dag_id)
            if current == parsed.dag_hash:
                outcome.unchanged.append(parsed.dag_id)
                continue
            serialized = {"data": parsed.data, "dag_hash": parsed.dag_hash, "fileloc": parsed.fileloc}
            if current is None:
                conn.execute(insert(ser_t).values(dag_id=parsed.dag_id, last_updated=now, **serialized))
            else:
                conn.execute(
                    update(ser_t).where(ser_t.c.dag_id == parsed.dag_id).values(last_updated=now, **serialized)
                )
            outcome.serialized.append(parsed.dag_id)
        in_file = and_(dag_t.c.fileloc == result.path, dag_t.c.dag_id.not_in(ids))
        if has_error:
            conn.execute(update(dag_t).where(in_file).values(has_import_errors=True))
        else:
            stale = list(conn.execute(select(dag_t.c.dag_id).where(in_file, dag_t.c.is_active)).scalars())
            if stale:
                conn.execute(update(dag_t).where(dag_t.c.dag_id.in_(stale)).values(is_active=False))
                outcome.deactivated.extend(stale)
        self._replace_error(conn, result.path, result.error, now)
        return outcome

    def forget(self, paths: Iterable[str]) -> WriteOutcome:
        """Files that are gone (deleted, now ignored, no longer DAG files): deactivate their DAGs, clear errors."""
        from sqlalchemy import select, update

        outcome = WriteOutcome()
        dag_t = self.t.dag
        paths = list(paths)
        if not paths:
            return outcome
        with self.engine.begin() as conn:
            for chunk in _chunks(paths):
                stale = list(
                    conn.execute(select(dag_t.c.dag_id).where(dag_t.c.fileloc.in_(chunk), dag_t.c.is_active)).scalars()
                )
                if stale:
                    conn.execute(update(dag_t).where(dag_t.c.dag_id.in_(stale)).values(is_active=False))
                    outcome.deactivated.extend(stale)
                for path in chunk:
                    self._replace_error(conn, path, None, None)
        return outcome

    def deactivate_unseen(self, current: set[str]) -> WriteOutcome:
        """After a full pass: deactivate active DAGs whose file is not among ``current`` (deleted while no
        processor ran, or a folder that changed) and drop import errors of files no longer there."""
        from sqlalchemy import delete, select, update

        outcome = WriteOutcome()
        dag_t, err_t = self.t.dag, self.t.import_error
        with self.engine.begin() as conn:
            rows = conn.execute(select(dag_t.c.dag_id, dag_t.c.fileloc).where(dag_t.c.is_active)).all()
            stale = [row.dag_id for row in rows if row.fileloc not in current]
            for chunk in _chunks(stale):
                conn.execute(update(dag_t).where(dag_t.c.dag_id.in_(chunk)).values(is_active=False))
            outcome.deactivated.extend(stale)
            errors = [
                row.id for row in conn.execute(select(err_t.c.id, err_t.c.filename)) if row.filename not in current
            ]
            for chunk in _chunks(errors):
                conn.execute(delete(err_t).where(err_t.c.id.in_(chunk)))
        return outcome

    def _replace_error(self, conn: Connection, path: str, error: str | None, now: Any) -> None:
        from sqlalchemy import delete, insert

        err_t = self.t.import_error
        digest = self.t.filename_hash(path)
        conn.execute(delete(err_t).where(err_t.c.filename_hash == digest, err_t.c.filename == path))
        if error is not None:
            conn.execute(insert(err_t).values(filename=path, filename_hash=digest, stacktrace=error, timestamp=now))


def _dag_values(parsed: ParsedDag, now: Any, has_error: bool, dumps: Any) -> dict[str, Any]:
    return {
        "fileloc": parsed.fileloc,
        "is_active": True,
        "description": parsed.description,
        "schedule": parsed.schedule,
        "timetable_description": parsed.schedule,
        "tags": dumps(parsed.tags),
        "owners": parsed.owners,
        "max_active_runs": parsed.max_active_runs,
        "max_active_tasks": parsed.max_active_tasks,
        "has_import_errors": has_error,
        "last_parsed_time": now,
        "dag_display_name": parsed.dag_display_name,
    }


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
