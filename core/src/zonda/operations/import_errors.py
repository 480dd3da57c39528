"""Import errors: DAG files that failed to load, as the DAG processor (or a CLI parse) recorded them.

Called by ``zonda dags list | list-import-errors`` (which parse the folder and record what they found) and by the
web server's error banner. Stored tracebacks were masked when they were written; they are masked again on the
way out, with the secrets known now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from zonda.metastore import tables as t


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


def import_error_files(engine: Any) -> list[ImportErrorFile]:
    """The files with a stored import error, by name: cheap enough for every DAGs page."""
    ie = t.import_error
    with engine.connect() as conn:
        rows = conn.execute(select(ie.c.id, ie.c.filename).order_by(ie.c.filename, ie.c.id)).all()
    return [ImportErrorFile(r.id, r.filename) for r in rows]


def list_import_errors(engine: Any, *, settings: Any = None) -> list[ImportErrorRecord]:
    """The stored import errors by file name."""
    from zonda.secrets import mask_stored_texts

    ie = t.import_error
    with engine.connect() as conn:
        rows = conn.execute(select(ie).order_by(ie.c.filename, ie.c.id)).all()
    masked = mask_stored_texts([r.stacktrace or "" for r in rows], settings=settings) if rows else []
    return [ImportErrorRecord(r.id, r.filename, m, r.timestamp) for r, m in zip(rows, masked, strict=True)]


def record_import_errors(metastore: Any, bag: Any) -> None:
    """Replace the stored errors of the files ``bag`` parsed with its current ones (after a full scan, drop the
    errors of files that are gone)."""
    from zonda.dagbag import record_import_errors as record

    record(metastore, bag)
