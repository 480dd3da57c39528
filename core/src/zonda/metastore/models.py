"""The metastore tables as typed SQLAlchemy 2.0 models.

Conventions: every datetime column is :class:`~zonda.metastore.base.UtcDateTime` (aware UTC in, aware UTC
out); JSON payloads (``conf``, ``tags``, ``value``, ...) are stored as text and encoded / decoded by the code
that owns them; ``X | None`` means the column is nullable.

MySQL/MariaDB limit an InnoDB index key to 3072 bytes and ``utf8mb4`` reserves 4 bytes per character, so the
string columns of a composite key are sized to fit: three ``String(250)`` ids plus an integer is 3004 bytes.
Foreign keys that are not the first column of the primary key get their own index, which PostgreSQL needs for
fast cascading deletes and which stops InnoDB from adding an implicit one the migrations do not know about.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from zonda.metastore.base import Base, LongText, UtcDateTime, utcnow

ID_LENGTH = 250
"""Length of dag ids, run ids, task ids and XCom keys (the composite-key budget above)."""


class DagModel(Base):
    """One row per DAG the processor has seen: what the scheduler and UI need without parsing the file."""

    __tablename__ = "dag"

    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    fileloc: Mapped[str | None] = mapped_column(String(2000))
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    schedule: Mapped[str | None] = mapped_column(Text)
    timetable_description: Mapped[str | None] = mapped_column(String(1000))
    tags: Mapped[str | None] = mapped_column(LongText)
    owners: Mapped[str | None] = mapped_column(String(2000))
    max_active_runs: Mapped[int | None] = mapped_column(Integer)
    max_active_tasks: Mapped[int | None] = mapped_column(Integer)
    has_import_errors: Mapped[bool] = mapped_column(Boolean, default=False)
    last_parsed_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_dagrun: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_dagrun_data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_dagrun_data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def __repr__(self) -> str:
        return f"<DagModel {self.dag_id}>"


class SerializedDagModel(Base):
    """The JSON form of a parsed DAG, so the scheduler and web server never import user code."""

    __tablename__ = "serialized_dag"

    dag_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("dag.dag_id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[str] = mapped_column(LongText)
    dag_hash: Mapped[str] = mapped_column(String(32))
    fileloc: Mapped[str | None] = mapped_column(String(2000))
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<SerializedDagModel {self.dag_id} {self.dag_hash}>"


class DagRunModel(Base):
    """One run of a DAG. ``run_type`` is one of ``manual``, ``scheduled``, ``backfill``, ``test``."""

    __tablename__ = "dag_run"
    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
        Index("ix_dag_run_dag_id_state", "dag_id", "state"),
        Index("ix_dag_run_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    logical_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    run_type: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(50))
    conf: Mapped[str | None] = mapped_column(LongText)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    external_trigger: Mapped[bool] = mapped_column(Boolean, default=False)
    last_scheduling_decision: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<DagRunModel {self.dag_id} {self.run_id} {self.state}>"


class TaskInstanceModel(Base):
    """One task (one map index) in one DAG run. ``state`` NULL means "none": not decided yet."""

    __tablename__ = "task_instance"
    __table_args__ = (
        UniqueConstraint(
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            name="uq_task_instance_dag_id_run_id_task_id_map_index",
        ),
        Index("ix_task_instance_dag_run_id", "dag_run_id"),
        Index("ix_task_instance_dag_id_state", "dag_id", "state"),
        Index("ix_task_instance_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_run_id: Mapped[int] = mapped_column(Integer, ForeignKey("dag_run.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    task_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    state: Mapped[str | None] = mapped_column(String(20))
    try_number: Mapped[int] = mapped_column(Integer, default=0)
    max_tries: Mapped[int] = mapped_column(Integer, default=0)
    hostname: Mapped[str | None] = mapped_column(String(1000))
    unixname: Mapped[str | None] = mapped_column(String(1000))
    pid: Mapped[int | None] = mapped_column(Integer)
    queued_dttm: Mapped[datetime | None] = mapped_column(UtcDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    operator: Mapped[str | None] = mapped_column(String(1000))
    pool: Mapped[str] = mapped_column(String(256), default="default_pool")
    pool_slots: Mapped[int] = mapped_column(Integer, default=1)
    queue: Mapped[str | None] = mapped_column(String(256))
    priority_weight: Mapped[int | None] = mapped_column(Integer)
    executor: Mapped[str | None] = mapped_column(String(1000))
    executor_config: Mapped[str | None] = mapped_column(LongText)
    external_executor_id: Mapped[str | None] = mapped_column(String(250))
    next_method: Mapped[str | None] = mapped_column(String(1000))
    next_kwargs: Mapped[str | None] = mapped_column(LongText)
    rendered_fields: Mapped[str | None] = mapped_column(LongText)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<TaskInstanceModel {self.dag_id} {self.run_id} {self.task_id}[{self.map_index}] {self.state}>"


class XComModel(Base):
    """A value one task instance shares with others, as JSON text. ``dag_id``/``run_id`` are denormalized."""

    __tablename__ = "xcom"
    __table_args__ = (Index("ix_xcom_dag_id_run_id", "dag_id", "run_id"),)

    dag_run_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    task_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=-1)
    key: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    value: Mapped[str | None] = mapped_column(LongText)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<XComModel {self.dag_id} {self.run_id} {self.task_id}[{self.map_index}] {self.key}>"


class ConnectionModel(Base):
    """A connection stored in the metastore; ``password`` and ``extra`` are Fernet tokens when encrypted."""

    __tablename__ = "connection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conn_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    conn_type: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(500))
    schema: Mapped[str | None] = mapped_column(String(500))
    login: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)
    port: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(Text)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_extra_encrypted: Mapped[bool] = mapped_column(Boolean, default=False)

    def __repr__(self) -> str:
        # Never the password or extra: reprs end up in logs.
        return f"<ConnectionModel {self.conn_id} ({self.conn_type})>"


def filename_hash(filename: str) -> str:
    """The indexed stand-in for a file path: SHA-256 hex of its UTF-8 bytes.

    A 1024-character path is 4096 bytes in ``utf8mb4``, over InnoDB's index limit, so lookups go through the
    hash: ``select(ImportErrorModel).where(ImportErrorModel.filename_hash == filename_hash(path))``.
    """
    return hashlib.sha256(filename.encode("utf-8")).hexdigest()


def _filename_hash_default(context: Any) -> str | None:
    filename = context.get_current_parameters().get("filename")
    return None if filename is None else filename_hash(filename)


class ImportErrorModel(Base):
    """A DAG file that failed to import, with its traceback. ``filename_hash`` is filled in automatically."""

    __tablename__ = "import_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    filename: Mapped[str] = mapped_column(String(1024))
    filename_hash: Mapped[str] = mapped_column(String(64), index=True, default=_filename_hash_default)
    stacktrace: Mapped[str | None] = mapped_column(LongText)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("filename")
    def _set_filename_hash(self, _key: str, filename: str) -> str:
        # The column default covers Core inserts; this keeps ORM objects right after an update too.
        self.filename_hash = filename_hash(filename)
        return filename

    def __repr__(self) -> str:
        return f"<ImportErrorModel {self.filename}>"


__all__ = [
    "ConnectionModel",
    "DagModel",
    "DagRunModel",
    "ImportErrorModel",
    "SerializedDagModel",
    "TaskInstanceModel",
    "XComModel",
    "filename_hash",
]
