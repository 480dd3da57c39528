"""The declarative base and the column types every metastore model shares.

Datetimes are stored as naive UTC everywhere (``TIMESTAMP WITHOUT TIME ZONE``, ``DATETIME(6)`` on
MySQL/MariaDB, text on SQLite) and come back timezone-aware, so the three databases behave alike and no
server or session time zone can shift a value. Writing a naive datetime is an error: guessing its zone is how
off-by-hours bugs are born.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
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


#: JSON payloads and other text that may be large: ``TEXT`` (unbounded) on PostgreSQL and SQLite,
#: ``LONGTEXT`` (4 GiB) on MySQL/MariaDB where plain ``TEXT`` stops at 64 KiB.
LongText: TypeEngine[str] = Text().with_variant(mysql.LONGTEXT(), *_MYSQL)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive in UTC with microseconds.

    Binding converts any aware datetime to UTC; binding a naive datetime raises :class:`ValueError`.
    Results are aware datetimes in UTC.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
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


class Base(DeclarativeBase):
    """The declarative base of every metastore model; its metadata is what the migrations must produce."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime()}
