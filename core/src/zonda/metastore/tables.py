"""The metastore schema as SQLAlchemy Core tables: the one :data:`metadata` the migrations must produce.

This module is Core only (no ``sqlalchemy.orm``): the runner writes runs, task instances and XComs through
these ``Table`` objects so ``zonda dags test`` never pays for importing and configuring the ORM. The typed
models in :mod:`zonda.metastore.models` are mapped onto the same tables for everything else.

Conventions: every datetime column is :class:`~zonda.metastore.types.UtcDateTime` (aware UTC in, aware UTC
out); JSON payloads (``conf``, ``tags``, ``value``, ...) are stored as text and encoded / decoded by the code
that owns them.

MySQL/MariaDB limit an InnoDB index key to 3072 bytes and ``utf8mb4`` reserves 4 bytes per character, so the
string columns of a composite key are sized to fit: three ``String(250)`` ids plus an integer is 3004 bytes.
Foreign keys that are not the first column of the primary key get their own index, which PostgreSQL needs for
fast cascading deletes and which stops InnoDB from adding an implicit one the migrations do not know about.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from zonda.metastore.types import NAMING_CONVENTION, LongText, UtcDateTime, filename_hash, utcnow

ID_LENGTH = 250
"""Length of dag ids, run ids, task ids and XCom keys (the composite-key budget above)."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: One row per DAG the processor has seen: what the scheduler and UI need without parsing the file.
dag = Table(
    "dag",
    metadata,
    Column("dag_id", String(ID_LENGTH), primary_key=True),
    Column("fileloc", String(2000)),
    Column("is_paused", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("description", Text),
    Column("schedule", Text),
    Column("timetable_description", String(1000)),
    Column("tags", LongText),
    Column("owners", String(2000)),
    Column("max_active_runs", Integer),
    Column("max_active_tasks", Integer),
    Column("has_import_errors", Boolean, nullable=False, default=False),
    Column("last_parsed_time", UtcDateTime),
    Column("next_dagrun", UtcDateTime),
    Column("next_dagrun_data_interval_start", UtcDateTime),
    Column("next_dagrun_data_interval_end", UtcDateTime),
    #: Why the scheduler cannot create or decide this DAG's runs (it goes on with the other DAGs); NULL when fine.
    Column("scheduling_error", Text),
    #: The name the UI, API and CLI show for the DAG (``dag_display_name``; migration 0014); NULL: the id.
    Column("dag_display_name", String(2000)),
    #: When the row last changed (each parse touches it): the web server's change feed reads it (migration 0008).
    Column("updated_at", UtcDateTime, default=utcnow, onupdate=utcnow),
    Index("ix_dag_updated_at", "updated_at"),
)

#: The JSON form of a parsed DAG, so the scheduler and web server never import user code.
serialized_dag = Table(
    "serialized_dag",
    metadata,
    Column("dag_id", String(ID_LENGTH), ForeignKey("dag.dag_id", ondelete="CASCADE"), primary_key=True),
    Column("data", LongText, nullable=False),
    Column("dag_hash", String(32), nullable=False),
    Column("fileloc", String(2000)),
    Column("last_updated", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

#: One run of a DAG. ``run_type`` is one of ``manual``, ``scheduled``, ``backfill``, ``test``.
dag_run = Table(
    "dag_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(ID_LENGTH), nullable=False),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("logical_date", UtcDateTime),
    Column("data_interval_start", UtcDateTime),
    Column("data_interval_end", UtcDateTime),
    Column("run_type", String(50), nullable=False),
    Column("state", String(50), nullable=False),
    Column("conf", LongText),
    Column("queued_at", UtcDateTime),
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
    Column("external_trigger", Boolean, nullable=False, default=False),
    Column("last_scheduling_decision", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
    Index("ix_dag_run_dag_id_state", "dag_id", "state"),
    Index("ix_dag_run_state", "state"),
    Index("ix_dag_run_updated_at", "updated_at"),
    # Migration 0010: a DAG's runs in the API's default order (id) without sorting them all.
    Index("ix_dag_run_dag_id_id", "dag_id", "id"),
)

#: One task (one map index) in one DAG run. ``state`` NULL means "none": not decided yet.
task_instance = Table(
    "task_instance",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_run_id", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("dag_id", String(ID_LENGTH), nullable=False),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("task_id", String(ID_LENGTH), nullable=False),
    Column("map_index", Integer, nullable=False, default=-1),
    Column("state", String(20)),
    Column("try_number", Integer, nullable=False, default=0),
    Column("max_tries", Integer, nullable=False, default=0),
    Column("hostname", String(1000)),
    Column("unixname", String(1000)),
    Column("pid", Integer),
    Column("queued_dttm", UtcDateTime),
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
    Column("duration", Float),
    Column("operator", String(1000)),
    Column("pool", String(256), nullable=False, default="default_pool"),
    Column("pool_slots", Integer, nullable=False, default=1),
    Column("queue", String(256)),
    Column("priority_weight", Integer),
    Column("executor", String(1000)),
    Column("executor_config", LongText),
    Column("external_executor_id", String(250)),
    Column("next_method", String(1000)),
    Column("next_kwargs", LongText),
    Column("rendered_fields", LongText),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    # Scheduling (migration 0002): when an up_for_retry / up_for_reschedule instance may run again; the job
    # that queued it and the job running it (ownership: a task whose row names another job stops); the
    # heartbeat of its process; the trigger it is deferred on.
    Column("ready_at", UtcDateTime),
    Column("queued_by_job_id", Integer),
    Column("job_id", Integer),
    Column("last_heartbeat_at", UtcDateTime),
    Column("trigger_id", Integer, ForeignKey("trigger.id", ondelete="SET NULL")),
    Column("trigger_timeout", UtcDateTime),
    # Migration 0007: when the current running phase began (the try's start, or its resumption after a
    # deferral, whereas ``start_date`` keeps the try's first start for ``execution_timeout``); the Gantt view
    # draws running bars from it.
    Column("running_since", UtcDateTime),
    # Migration 0014: a mapped instance's ``map_index_template`` as rendered when it ran, and the task's
    # ``task_display_name`` (NULL: the task id).
    Column("rendered_map_index", String(250)),
    Column("task_display_name", String(2000)),
    # Migration 0015: the address of the log server of the worker running the current try (``http://host:port``;
    # NULL when the try ran where its log file is local), so a log is readable from any machine.
    Column("log_server", String(1000)),
    UniqueConstraint(
        "dag_id",
        "run_id",
        "task_id",
        "map_index",
        name="uq_task_instance_dag_id_run_id_task_id_map_index",
    ),
    Index("ix_task_instance_trigger_id", "trigger_id"),
    Index("ix_task_instance_dag_run_id", "dag_run_id"),
    Index("ix_task_instance_dag_id_state", "dag_id", "state"),
    Index("ix_task_instance_state", "state"),
    Index("ix_task_instance_updated_at", "updated_at"),
    # Migration 0010: the API's pages of one DAG's (or one run's) instances in the default order (id) or by start
    # date, and of every DAG's by start date, walk these indexes instead of sorting every instance.
    Index("ix_task_instance_dag_id_id", "dag_id", "id"),
    Index("ix_task_instance_dag_id_run_id_id", "dag_id", "run_id", "id"),
    Index("ix_task_instance_start_date", "start_date", "id"),
    Index("ix_task_instance_dag_id_start_date", "dag_id", "start_date", "id"),
)

#: One finished phase of a try, copied from ``task_instance`` by :mod:`zonda.operations.transitions` when the
#: phase ends (the try ends, defers, reschedules, or is cleared or marked while under way): the current row only
#: holds the latest try, and the Gantt view draws every try's queued, running and deferred time. ``state`` is
#: the state the phase ended in (``deferred`` and ``up_for_reschedule`` end a phase, not the try).
task_instance_history = Table(
    "task_instance_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_run_id", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_instance_id", Integer, nullable=False),
    Column("task_id", String(ID_LENGTH), nullable=False),
    Column("map_index", Integer, nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("state", String(20)),
    Column("queued_dttm", UtcDateTime),
    Column("start_date", UtcDateTime),
    Column("running_since", UtcDateTime),
    Column("end_date", UtcDateTime),
    Column("hostname", String(1000)),
    Column("log_server", String(1000)),
    Index("ix_task_instance_history_dag_run_id", "dag_run_id"),
)

#: A value one task instance shares with others, as JSON text. ``dag_id``/``run_id`` are denormalized.
xcom = Table(
    "xcom",
    metadata,
    Column("dag_run_id", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("task_id", String(ID_LENGTH), primary_key=True),
    Column("map_index", Integer, primary_key=True, autoincrement=False, default=-1),
    Column("key", String(ID_LENGTH), primary_key=True),
    Column("dag_id", String(ID_LENGTH), nullable=False),
    Column("run_id", String(ID_LENGTH), nullable=False),
    Column("value", LongText),
    Column("timestamp", UtcDateTime, nullable=False, default=utcnow),
    Index("ix_xcom_dag_id_run_id", "dag_id", "run_id"),
)

#: A connection stored in the metastore; ``password`` and ``extra`` are Fernet tokens when encrypted.
connection = Table(
    "connection",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conn_id", String(ID_LENGTH), nullable=False, unique=True),
    Column("conn_type", String(500), nullable=False),
    Column("description", Text),
    Column("host", String(500)),
    Column("schema", String(500)),
    Column("login", Text),
    Column("password", Text),
    Column("port", Integer),
    Column("extra", Text),
    Column("is_encrypted", Boolean, nullable=False, default=False),
    Column("is_extra_encrypted", Boolean, nullable=False, default=False),
)


#: A variable stored in the metastore (``zonda variables``, ``Variable.set``); ``val`` is a Fernet token when
#: ``is_encrypted`` (always, for values Zonda writes). ``key`` follows the variable key rule of
#: :mod:`zonda.identifiers`, so it fits the ``String(250)`` unique index on every backend.
variable = Table(
    "variable",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(ID_LENGTH), nullable=False, unique=True),
    Column("val", LongText),
    Column("description", Text),
    Column("is_encrypted", Boolean, nullable=False, default=False),
)


def _filename_hash_default(context: Any) -> str | None:
    filename = context.get_current_parameters().get("filename")
    return None if filename is None else filename_hash(filename)


#: A DAG file that failed to import, with its traceback. ``filename_hash`` is filled in from ``filename`` on
#: insert when not given.
import_error = Table(
    "import_error",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("filename", String(1024), nullable=False),
    Column("filename_hash", String(64), nullable=False, index=True, default=_filename_hash_default),
    Column("stacktrace", LongText),
    Column("timestamp", UtcDateTime, nullable=False, default=utcnow),
)


#: A long-running process: a scheduler, a triggerer, a worker. Its heartbeat tells others it is alive.
job = Table(
    "job",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_type", String(30), nullable=False),
    Column("state", String(20), nullable=False),
    Column("hostname", String(1000)),
    Column("pid", Integer),
    Column("executor_class", String(1000)),
    Column("start_date", UtcDateTime),
    Column("end_date", UtcDateTime),
    Column("latest_heartbeat", UtcDateTime),
    Index("ix_job_job_type_state", "job_type", "state"),
)

#: Named slot limits shared by every DAG (``default_pool`` always exists).
pool = Table(
    "slot_pool",
    metadata,
    Column("pool", String(256), primary_key=True),
    Column("slots", Integer, nullable=False, default=128),
    Column("description", Text),
    Column("include_deferred", Boolean, nullable=False, default=False),
)

#: A trigger a deferred task waits on: its class path and JSON kwargs (never a pickle).
trigger = Table(
    "trigger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("classpath", String(1000), nullable=False),
    Column("kwargs", LongText, nullable=False),
    Column("created_date", UtcDateTime, nullable=False, default=utcnow),
    Column("triggerer_id", Integer),
    Index("ix_trigger_triggerer_id", "triggerer_id"),
)

#: A user callback the scheduler decided must run but cannot run itself (it never imports user code): a DAG
#: run's on_success/on_failure_callback, or a task's callbacks when the scheduler ended its try (the task
#: process died). The DAG processor claims each row, runs it in a child process and deletes it.
callback_request = Table(
    "callback_request",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("kind", String(30), nullable=False),
    Column("dag_id", String(ID_LENGTH), nullable=False),
    Column("fileloc", String(2000)),
    Column("dag_run_id", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(ID_LENGTH)),
    Column("map_index", Integer, nullable=False, default=-1),
    Column("try_number", Integer),
    Column("message", Text),
    Column("claimed_by", String(1000)),
    Column("claimed_at", UtcDateTime),
    Index("ix_callback_request_dag_run_id", "dag_run_id"),
)


#: One row per DAG run and deadline alert (``DAG(deadline=...)``), written when the scheduler starts watching the
#: run. ``resolved`` turns true once the deadline has passed and was judged: ``missed`` (the run was still queued or
#: running, its callback requested) or met. The scheduler reads the due, unresolved rows with one query on
#: ``ix_dag_run_deadline_due`` per check, however many runs there are.
dag_run_deadline = Table(
    "dag_run_deadline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_run_id", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("alert_index", Integer, nullable=False),
    Column("deadline_at", UtcDateTime, nullable=False),
    Column("resolved", Boolean, nullable=False, default=False),
    Column("missed", Boolean),
    UniqueConstraint("dag_run_id", "alert_index"),
    Index("ix_dag_run_deadline_due", "resolved", "deadline_at"),
)


#: A person who logs in to the web server. ``password_hash`` is an argon2 hash (never the password); ``role`` is
#: one of Viewer, User, Op, Admin (:mod:`zonda.operations.users`). Named ``web_user`` because ``user`` is a
#: reserved word in PostgreSQL and MySQL.
web_user = Table(
    "web_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False, unique=True),
    Column("email", String(320)),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(512), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("last_login_at", UtcDateTime),
)

#: Who changed what: logins, user changes, and (from the UI and API) triggers, clears, marks, pauses, connection
#: and variable edits. ``username`` is NULL for an anonymous actor (a failed login names the attempted user in
#: ``target``); ``details`` is JSON text, never a secret.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False, default=utcnow),
    Column("username", String(256)),
    Column("action", String(100), nullable=False),
    Column("target", String(1000)),
    Column("details", LongText),
    Index("ix_audit_log_at", "at"),
)


#: A user's API token (``Authorization: Bearer <token>``): the token is ``zonda_<id>_<secret>``; only the SHA-256 of
#: the whole token is stored, so the metastore never holds a usable token. ``expires_at`` is required; a revoked
#: token keeps its row (``revoked_at``) so the audit log's token ids stay explainable. See
#: :mod:`zonda.operations.api_tokens`.
api_token = Table(
    "api_token",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("web_user.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Index("ix_api_token_user_id", "user_id"),
)

#: Narrows what a user sees: a user with no grants sees every DAG with their role; a user with grants sees only
#: DAGs matching one (``kind`` ``tag``: a tag equal to ``pattern``; ``glob``: the DAG id matches ``pattern``,
#: stored also as the SQL ``LIKE`` pattern ``like_pattern``), with ``role`` (NULL: the user's own role; never more).
#: See :mod:`zonda.operations.dag_grants`.
dag_grant = Table(
    "dag_grant",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("web_user.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("pattern", String(ID_LENGTH), nullable=False),
    Column("like_pattern", String(500), nullable=False),
    Column("role", String(20)),
    UniqueConstraint("user_id", "kind", "pattern"),
)

#: ``dag.tags`` one row per tag (written with it, :mod:`zonda.metastore.dag_tags`), for indexed tag lookups.
dag_tag = Table(
    "dag_tag",
    metadata,
    Column("dag_id", String(ID_LENGTH), ForeignKey("dag.dag_id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(ID_LENGTH), primary_key=True),
    Index("ix_dag_tag_name", "name"),
)


__all__ = [
    "ID_LENGTH",
    "api_token",
    "audit_log",
    "callback_request",
    "connection",
    "dag",
    "dag_grant",
    "dag_run",
    "dag_run_deadline",
    "dag_tag",
    "filename_hash",
    "import_error",
    "job",
    "metadata",
    "pool",
    "serialized_dag",
    "task_instance",
    "task_instance_history",
    "trigger",
    "variable",
    "web_user",
    "xcom",
]
