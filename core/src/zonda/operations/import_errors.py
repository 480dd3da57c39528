"""Import errors: DAG files that failed to load, as the DAG processor (or a CLI parse) recorded them.

Called by ``zonda dags list | list-import-errors`` (which parse the folder and record what they found) and by the
web server's error banner. Stored tracebacks were masked when they were written; they are masked again on the
way out, with the secrets known now.

A user with per-DAG grants sees only the errors of files that hold a DAG they may see (the file's name can be a
DAG's, and its traceback quotes the file's code): a file that never loaded has no DAG rows, so such a user sees
none of its errors. One correlated ``EXISTS`` in the same statement; nothing for users without grants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select

from zonda.metastore import tables as t
from zonda.operations.dag_grants import visible_dags_clause


@dataclass(frozen=True)
class ImportErrorRecord:
    id: int
    filename: str
    stacktrace: str
    timestamp: datetime | None


@dataclass(frozen=True)
class ImportErrorFile:
    """A file that failed to import, without its traceback (for a banner that links to it)."""

    id: int
    filename: str


def _visible(query: Any, visible_to: Any) -> Any:
    """``query`` (over ``import_error``) without the files whose DAGs ``visible_to``'s grants hide."""
    if not getattr(visible_to, "has_grants", False):
        return query
    ie, dag = t.import_error, t.dag
    shown = select(dag.c.dag_id).where(dag.c.fileloc == ie.c.filename, visible_dags_clause(visible_to, dag.c.dag_id))
    return query.where(exists(shown.correlate(ie)))


def import_error_files(engine: Any, *, visible_to: Any = None) -> list[ImportErrorFile]:
    """The files with a stored import error, by name: cheap enough for every DAGs page."""
    ie = t.import_error
    query = _visible(select(ie.c.id, ie.c.filename).order_by(ie.c.filename, ie.c.id), visible_to)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [ImportErrorFile(r.id, r.filename) for r in rows]


def list_import_errors(engine: Any, *, settings: Any = None, visible_to: Any = None) -> list[ImportErrorRecord]:
    """The stored import errors by file name (those ``visible_to``, a user, may see, when given)."""
    from zonda.secrets import mask_stored_texts

    ie = t.import_error
    with engine.connect() as conn:
        rows = conn.execute(_visible(select(ie).order_by(ie.c.filename, ie.c.id), visible_to)).all()
    masked = mask_stored_texts([r.stacktrace or "" for r in rows], settings=settings) if rows else []
    return [ImportErrorRecord(r.id, r.filename, m, r.timestamp) for r, m in zip(rows, masked, strict=True)]


def record_import_errors(metastore: Any, bag: Any) -> None:
    """Replace the stored errors of the files ``bag`` parsed with its current ones (after a full scan, drop the
    errors of files that are gone)."""
    from zonda.dagbag import record_import_errors as record

    record(metastore, bag)
