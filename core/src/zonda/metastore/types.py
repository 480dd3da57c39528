"""The column types and conventions every metastore table shares (SQLAlchemy Core only).

Datetimes are stored as naive UTC everywhere (``TIMESTAMP WITHOUT TIME ZONE``, ``DATETIME(6)`` on
MySQL/MariaDB, text on SQLite) and come back timezone-aware, so the three databases behave alike and no
server or session time zone can shift a value. Writing a naive datetime is an error: guessing its zone is how
off-by-hours bugs are born.

Nothing here imports ``sqlalchemy.orm`` or the MySQL dialect (importing ``sqlalchemy.dialects.mysql`` costs
more than the whole SQLite dialect): the MySQL/MariaDB variants are picked per dialect in
``load_dialect_impl``, by which time that dialect is loaded anyway.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

#: Constraint and index names are deterministic so migrations can refer to them on every database.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_MYSQL = ("mysql", "mariadb")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default of every timestamp column)."""
    return datetime.now(UTC)


def filename_hash(filename: str) -> str:
    """The indexed stand-in for a file path: SHA-256 hex of its UTF-8 bytes.

    A 1024-character path is 4096 bytes in ``utf8mb4``, over InnoDB's index limit, so lookups go through the
    hash: ``select(import_error).where(import_error.c.filename_hash == filename_hash(path))``.
    """
    return hashlib.sha256(filename.encode("utf-8")).hexdigest()


class LongTextType(TypeDecorator[str]):
    """``TEXT`` (unbounded) on PostgreSQL and SQLite, ``LONGTEXT`` (4 GiB) on MySQL/MariaDB."""

    impl = Text
    cache_ok = True

    @property
    def python_type(self) -> type[str]:
        return str

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            from sqlalchemy.dialects.mysql import LONGTEXT

            return LONGTEXT()
        # Not ``dialect.type_descriptor(Text())``: psycopg adapts that to a string type that renders VARCHAR.
        return Text()


#: JSON payloads and other text that may be large: ``TEXT`` (unbounded) on PostgreSQL and SQLite,
#: ``LONGTEXT`` (4 GiB) on MySQL/MariaDB where plain ``TEXT`` stops at 64 KiB.
LongText: TypeEngine[str] = LongTextType()


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive in UTC with microseconds.

    Binding converts any aware datetime to UTC; binding a naive datetime raises :class:`ValueError`.
    Results are aware datetimes in UTC.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} cannot be stored in the metastore: give it a timezone, "
                "e.g. value.replace(tzinfo=datetime.UTC) or zonda.timezone helpers"
            )
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


__all__ = ["NAMING_CONVENTION", "LongText", "LongTextType", "UtcDateTime", "filename_hash", "utcnow"]
