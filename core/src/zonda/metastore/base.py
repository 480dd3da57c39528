"""The declarative base of the typed metastore models, and (re-exported) the column types they share.

The schema itself lives in :mod:`zonda.metastore.tables` (SQLAlchemy Core) and the types in
:mod:`zonda.metastore.types`; :attr:`Base.metadata` *is* :data:`zonda.metastore.tables.metadata`, so the ORM
models and the Core tables are one schema. Importing this module loads ``sqlalchemy.orm``; the run path
avoids it by using the Core tables directly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import DeclarativeBase

from zonda.metastore.tables import metadata
from zonda.metastore.types import NAMING_CONVENTION, LongText, UtcDateTime, utcnow


class Base(DeclarativeBase):
    """The declarative base of every metastore model; its metadata is what the migrations must produce."""

    metadata = metadata
    type_annotation_map = {datetime: UtcDateTime()}


__all__ = ["NAMING_CONVENTION", "Base", "LongText", "UtcDateTime", "utcnow"]
