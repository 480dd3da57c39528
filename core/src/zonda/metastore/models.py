"""The metastore tables as typed SQLAlchemy 2.0 models.

Why the columns are not declared here: importing and configuring the ORM costs a few hundred milliseconds,
more than a whole ``zonda dags test`` of a small DAG may take. So the schema is SQLAlchemy Core tables in
:mod:`zonda.metastore.tables`, which the runner writes through without loading the ORM, and each model here
maps one of those tables ("declarative with imperative table": ``__table__ = tables.<name>``). The
``Mapped[...]`` annotations only give the attributes their types; ``X | None`` marks a nullable column. See
:mod:`zonda.metastore.tables` for the column conventions and key-size budget.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, validates

from zonda.metastore import tables
from zonda.metastore.base import Base
from zonda.metastore.tables import ID_LENGTH, filename_hash


class DagModel(Base):
    """One row per DAG the processor has seen: what the scheduler and UI need without parsing the file."""

    __table__ = tables.dag

    dag_id: Mapped[str]
    fileloc: Mapped[str | None]
    is_paused: Mapped[bool]
    is_active: Mapped[bool]
    description: Mapped[str | None]
    schedule: Mapped[str | None]
    timetable_description: Mapped[str | None]
    tags: Mapped[str | None]
    owners: Mapped[str | None]
    max_active_runs: Mapped[int | None]
    max_active_tasks: Mapped[int | None]
    has_import_errors: Mapped[bool]
    last_parsed_time: Mapped[datetime | None]
    next_dagrun: Mapped[datetime | None]
    next_dagrun_data_interval_start: Mapped[datetime | None]
    next_dagrun_data_interval_end: Mapped[datetime | None]
    scheduling_error: Mapped[str | None]
    dag_display_name: Mapped[str | None]
    updated_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<DagModel {self.dag_id}>"


class SerializedDagModel(Base):
    """The JSON form of a parsed DAG, so the scheduler and web server never import user code."""

    __table__ = tables.serialized_dag

    dag_id: Mapped[str]
    data: Mapped[str]
    dag_hash: Mapped[str]
    fileloc: Mapped[str | None]
    last_updated: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<SerializedDagModel {self.dag_id} {self.dag_hash}>"


class DagRunModel(Base):
    """One run of a DAG. ``run_type`` is one of ``manual``, ``scheduled``, ``backfill``, ``test``."""

    __table__ = tables.dag_run

    id: Mapped[int]
    dag_id: Mapped[str]
    run_id: Mapped[str]
    logical_date: Mapped[datetime | None]
    data_interval_start: Mapped[datetime | None]
    data_interval_end: Mapped[datetime | None]
    run_type: Mapped[str]
    state: Mapped[str]
    conf: Mapped[str | None]
    queued_at: Mapped[datetime | None]
    start_date: Mapped[datetime | None]
    end_date: Mapped[datetime | None]
    external_trigger: Mapped[bool]
    last_scheduling_decision: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<DagRunModel {self.dag_id} {self.run_id} {self.state}>"


class TaskInstanceModel(Base):
    """One task (one map index) in one DAG run. ``state`` NULL means "none": not decided yet."""

    __table__ = tables.task_instance

    id: Mapped[int]
    dag_run_id: Mapped[int]
    dag_id: Mapped[str]
    run_id: Mapped[str]
    task_id: Mapped[str]
    map_index: Mapped[int]
    state: Mapped[str | None]
    try_number: Mapped[int]
    max_tries: Mapped[int]
    hostname: Mapped[str | None]
    unixname: Mapped[str | None]
    pid: Mapped[int | None]
    queued_dttm: Mapped[datetime | None]
    start_date: Mapped[datetime | None]
    end_date: Mapped[datetime | None]
    duration: Mapped[float | None]
    operator: Mapped[str | None]
    pool: Mapped[str]
    pool_slots: Mapped[int]
    queue: Mapped[str | None]
    priority_weight: Mapped[int | None]
    executor: Mapped[str | None]
    executor_config: Mapped[str | None]
    external_executor_id: Mapped[str | None]
    next_method: Mapped[str | None]
    next_kwargs: Mapped[str | None]
    rendered_fields: Mapped[str | None]
    updated_at: Mapped[datetime]
    ready_at: Mapped[datetime | None]
    queued_by_job_id: Mapped[int | None]
    job_id: Mapped[int | None]
    last_heartbeat_at: Mapped[datetime | None]
    trigger_id: Mapped[int | None]
    trigger_timeout: Mapped[datetime | None]
    running_since: Mapped[datetime | None]
    rendered_map_index: Mapped[str | None]
    task_display_name: Mapped[str | None]
    log_server: Mapped[str | None]

    def __repr__(self) -> str:
        return f"<TaskInstanceModel {self.dag_id} {self.run_id} {self.task_id}[{self.map_index}] {self.state}>"


class TaskInstanceHistoryModel(Base):
    """One finished phase of a try (see :data:`zonda.metastore.tables.task_instance_history`)."""

    __table__ = tables.task_instance_history

    id: Mapped[int]
    dag_run_id: Mapped[int]
    task_instance_id: Mapped[int]
    task_id: Mapped[str]
    map_index: Mapped[int]
    try_number: Mapped[int]
    state: Mapped[str | None]
    queued_dttm: Mapped[datetime | None]
    start_date: Mapped[datetime | None]
    running_since: Mapped[datetime | None]
    end_date: Mapped[datetime | None]
    hostname: Mapped[str | None]
    log_server: Mapped[str | None]

    def __repr__(self) -> str:
        return f"<TaskInstanceHistoryModel {self.task_id}[{self.map_index}] try {self.try_number} {self.state}>"


class XComModel(Base):
    """A value one task instance shares with others, as JSON text. ``dag_id``/``run_id`` are denormalized."""

    __table__ = tables.xcom

    dag_run_id: Mapped[int]
    task_id: Mapped[str]
    map_index: Mapped[int]
    key: Mapped[str]
    dag_id: Mapped[str]
    run_id: Mapped[str]
    value: Mapped[str | None]
    timestamp: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<XComModel {self.dag_id} {self.run_id} {self.task_id}[{self.map_index}] {self.key}>"


class ConnectionModel(Base):
    """A connection stored in the metastore; ``password`` and ``extra`` are Fernet tokens when encrypted."""

    __table__ = tables.connection

    id: Mapped[int]
    conn_id: Mapped[str]
    conn_type: Mapped[str]
    description: Mapped[str | None]
    host: Mapped[str | None]
    schema: Mapped[str | None]
    login: Mapped[str | None]
    password: Mapped[str | None]
    port: Mapped[int | None]
    extra: Mapped[str | None]
    is_encrypted: Mapped[bool]
    is_extra_encrypted: Mapped[bool]

    def __repr__(self) -> str:
        # Never the password or extra: reprs end up in logs.
        return f"<ConnectionModel {self.conn_id} ({self.conn_type})>"


class VariableModel(Base):
    """A variable stored in the metastore; ``val`` is a Fernet token when ``is_encrypted``."""

    __table__ = tables.variable

    id: Mapped[int]
    key: Mapped[str]
    val: Mapped[str | None]
    description: Mapped[str | None]
    is_encrypted: Mapped[bool]

    def __repr__(self) -> str:
        # Never the value: reprs end up in logs.
        return f"<VariableModel {self.key}>"


class ImportErrorModel(Base):
    """A DAG file that failed to import, with its traceback. ``filename_hash`` is filled in automatically.

    Lookups go through the hash:
    ``select(ImportErrorModel).where(ImportErrorModel.filename_hash == filename_hash(path))``.
    """

    __table__ = tables.import_error

    id: Mapped[int]
    filename: Mapped[str]
    filename_hash: Mapped[str]
    stacktrace: Mapped[str | None]
    timestamp: Mapped[datetime]

    @validates("filename")
    def _set_filename_hash(self, _key: str, filename: str) -> str:
        # The column default covers Core inserts; this keeps ORM objects right after an update too.
        self.filename_hash = filename_hash(filename)
        return filename

    def __repr__(self) -> str:
        return f"<ImportErrorModel {self.filename}>"


__all__ = [
    "ID_LENGTH",
    "ConnectionModel",
    "DagModel",
    "DagRunModel",
    "ImportErrorModel",
    "SerializedDagModel",
    "TaskInstanceModel",
    "XComModel",
    "filename_hash",
]


class JobModel(Base):
    """A scheduler, triggerer or worker process and its heartbeat."""

    __table__ = tables.job

    id: Mapped[int]
    job_type: Mapped[str]
    state: Mapped[str]
    hostname: Mapped[str | None]
    pid: Mapped[int | None]
    executor_class: Mapped[str | None]
    start_date: Mapped[datetime | None]
    end_date: Mapped[datetime | None]
    latest_heartbeat: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<JobModel {self.id} {self.job_type} {self.state}>"


class PoolModel(Base):
    """A named limit of task slots."""

    __table__ = tables.pool

    pool: Mapped[str]
    slots: Mapped[int]
    description: Mapped[str | None]
    include_deferred: Mapped[bool]

    def __repr__(self) -> str:
        return f"<PoolModel {self.pool} {self.slots}>"


class TriggerModel(Base):
    """A trigger deferred tasks wait on, as class path plus JSON kwargs."""

    __table__ = tables.trigger

    id: Mapped[int]
    classpath: Mapped[str]
    kwargs: Mapped[str]
    created_date: Mapped[datetime]
    triggerer_id: Mapped[int | None]

    def __repr__(self) -> str:
        return f"<TriggerModel {self.id} {self.classpath}>"


class CallbackRequestModel(Base):
    """A DAG-run or task callback waiting for the DAG processor to run it (see ``tables.callback_request``)."""

    __table__ = tables.callback_request

    id: Mapped[int]
    created_at: Mapped[datetime]
    kind: Mapped[str]
    dag_id: Mapped[str]
    fileloc: Mapped[str | None]
    dag_run_id: Mapped[int]
    task_id: Mapped[str | None]
    map_index: Mapped[int]
    try_number: Mapped[int | None]
    message: Mapped[str | None]
    claimed_by: Mapped[str | None]
    claimed_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<CallbackRequestModel {self.id} {self.kind} {self.dag_id}>"


class UserModel(Base):
    """A web server user; ``password_hash`` is argon2 (see :mod:`zonda.operations.users`)."""

    __table__ = tables.web_user

    id: Mapped[int]
    username: Mapped[str]
    email: Mapped[str | None]
    role: Mapped[str]
    password_hash: Mapped[str]
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        # Never the hash: reprs end up in logs.
        return f"<UserModel {self.username} ({self.role})>"


class AuditLogModel(Base):
    """One audit entry: who did what to which target, when."""

    __table__ = tables.audit_log

    id: Mapped[int]
    at: Mapped[datetime]
    username: Mapped[str | None]
    action: Mapped[str]
    target: Mapped[str | None]
    details: Mapped[str | None]

    def __repr__(self) -> str:
        return f"<AuditLogModel {self.id} {self.action}>"


class ApiTokenModel(Base):
    """A user's API token: its public id and the SHA-256 of the token, never the token."""

    __table__ = tables.api_token

    id: Mapped[str]
    user_id: Mapped[int]
    name: Mapped[str]
    token_hash: Mapped[str]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        # Never the hash: reprs end up in logs.
        return f"<ApiTokenModel {self.id} {self.name}>"


class DagGrantModel(Base):
    """One grant narrowing a user to DAGs with a tag or an id matching a glob (:mod:`zonda.operations.dag_grants`)."""

    __table__ = tables.dag_grant

    id: Mapped[int]
    user_id: Mapped[int]
    kind: Mapped[str]
    pattern: Mapped[str]
    like_pattern: Mapped[str]
    role: Mapped[str | None]

    def __repr__(self) -> str:
        return f"<DagGrantModel {self.user_id} {self.kind}:{self.pattern}>"


class DagTagModel(Base):
    """One tag of a DAG (``dag.tags`` as rows)."""

    __table__ = tables.dag_tag

    dag_id: Mapped[str]
    name: Mapped[str]

    def __repr__(self) -> str:
        return f"<DagTagModel {self.dag_id} {self.name}>"


class DagRunDeadlineModel(Base):
    """A run's deadline for one of its DAG's deadline alerts (:mod:`zonda.deadlines`): when it falls due, and
    whether the run met it (``resolved``) or missed it (``missed``, the alert's callback then asked for once)."""

    __table__ = tables.dag_run_deadline

    id: Mapped[int]
    dag_run_id: Mapped[int]
    alert_index: Mapped[int]
    deadline_at: Mapped[datetime]
    resolved: Mapped[bool]
    missed: Mapped[bool | None]

    def __repr__(self) -> str:
        return f"<DagRunDeadlineModel run {self.dag_run_id} alert {self.alert_index} at {self.deadline_at}>"
