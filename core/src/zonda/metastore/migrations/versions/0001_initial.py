"""The initial metastore schema: dag, serialized_dag, dag_run, task_instance, xcom, connection, import_error.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Types are spelled out here rather than imported from the models, so this migration keeps producing the same
schema whatever the models become: datetimes are naive UTC with microseconds (``DATETIME(6)`` on
MySQL/MariaDB), JSON payloads are ``TEXT`` (``LONGTEXT`` on MySQL/MariaDB).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _long_text() -> sa.types.TypeEngine:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "connection",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conn_id", sa.String(length=250), nullable=False),
        sa.Column("conn_type", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=500), nullable=True),
        sa.Column("schema", sa.String(length=500), nullable=True),
        sa.Column("login", sa.Text(), nullable=True),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("is_encrypted", sa.Boolean(), nullable=False),
        sa.Column("is_extra_encrypted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection")),
        sa.UniqueConstraint("conn_id", name=op.f("uq_connection_conn_id")),
    )
    op.create_table(
        "dag",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("fileloc", sa.String(length=2000), nullable=True),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=True),
        sa.Column("timetable_description", sa.String(length=1000), nullable=True),
        sa.Column("tags", _long_text(), nullable=True),
        sa.Column("owners", sa.String(length=2000), nullable=True),
        sa.Column("max_active_runs", sa.Integer(), nullable=True),
        sa.Column("max_active_tasks", sa.Integer(), nullable=True),
        sa.Column("has_import_errors", sa.Boolean(), nullable=False),
        sa.Column("last_parsed_time", _utc_datetime(), nullable=True),
        sa.Column("next_dagrun", _utc_datetime(), nullable=True),
        sa.Column("next_dagrun_data_interval_start", _utc_datetime(), nullable=True),
        sa.Column("next_dagrun_data_interval_end", _utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("dag_id", name=op.f("pk_dag")),
    )
    op.create_table(
        "dag_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("logical_date", _utc_datetime(), nullable=True),
        sa.Column("data_interval_start", _utc_datetime(), nullable=True),
        sa.Column("data_interval_end", _utc_datetime(), nullable=True),
        sa.Column("run_type", sa.String(length=50), nullable=False),
        sa.Column("state", sa.String(length=50), nullable=False),
        sa.Column("conf", _long_text(), nullable=True),
        sa.Column("queued_at", _utc_datetime(), nullable=True),
        sa.Column("start_date", _utc_datetime(), nullable=True),
        sa.Column("end_date", _utc_datetime(), nullable=True),
        sa.Column("external_trigger", sa.Boolean(), nullable=False),
        sa.Column("last_scheduling_decision", _utc_datetime(), nullable=True),
        sa.Column("updated_at", _utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_run")),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_dag_run_dag_id_run_id"),
    )
    op.create_index(op.f("ix_dag_run_dag_id_state"), "dag_run", ["dag_id", "state"])
    op.create_index(op.f("ix_dag_run_state"), "dag_run", ["state"])

    op.create_table(
        "import_error",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("filename", sa.String(length=1024), nullable=False),
        sa.Column("filename_hash", sa.String(length=64), nullable=False),
        sa.Column("stacktrace", _long_text(), nullable=True),
        sa.Column("timestamp", _utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_error")),
    )
    op.create_index(op.f("ix_import_error_filename_hash"), "import_error", ["filename_hash"])

    op.create_table(
        "serialized_dag",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("data", _long_text(), nullable=False),
        sa.Column("dag_hash", sa.String(length=32), nullable=False),
        sa.Column("fileloc", sa.String(length=2000), nullable=True),
        sa.Column("last_updated", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_id"], ["dag.dag_id"], name=op.f("fk_serialized_dag_dag_id_dag"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dag_id", name=op.f("pk_serialized_dag")),
    )
    op.create_table(
        "task_instance",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("max_tries", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=1000), nullable=True),
        sa.Column("unixname", sa.String(length=1000), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("queued_dttm", _utc_datetime(), nullable=True),
        sa.Column("start_date", _utc_datetime(), nullable=True),
        sa.Column("end_date", _utc_datetime(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("operator", sa.String(length=1000), nullable=True),
        sa.Column("pool", sa.String(length=256), nullable=False),
        sa.Column("pool_slots", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=256), nullable=True),
        sa.Column("priority_weight", sa.Integer(), nullable=True),
        sa.Column("executor", sa.String(length=1000), nullable=True),
        sa.Column("executor_config", _long_text(), nullable=True),
        sa.Column("external_executor_id", sa.String(length=250), nullable=True),
        sa.Column("next_method", sa.String(length=1000), nullable=True),
        sa.Column("next_kwargs", _long_text(), nullable=True),
        sa.Column("rendered_fields", _long_text(), nullable=True),
        sa.Column("updated_at", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_run.id"],
            name=op.f("fk_task_instance_dag_run_id_dag_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_instance")),
        sa.UniqueConstraint(
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            name="uq_task_instance_dag_id_run_id_task_id_map_index",
        ),
    )
    op.create_index(op.f("ix_task_instance_dag_id_state"), "task_instance", ["dag_id", "state"])
    op.create_index(op.f("ix_task_instance_dag_run_id"), "task_instance", ["dag_run_id"])
    op.create_index(op.f("ix_task_instance_state"), "task_instance", ["state"])

    op.create_table(
        "xcom",
        sa.Column("dag_run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("value", _long_text(), nullable=True),
        sa.Column("timestamp", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_run_id"], ["dag_run.id"], name=op.f("fk_xcom_dag_run_id_dag_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dag_run_id", "task_id", "map_index", "key", name=op.f("pk_xcom")),
    )
    op.create_index(op.f("ix_xcom_dag_id_run_id"), "xcom", ["dag_id", "run_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes (MySQL refuses to drop an index a foreign key still needs).
    for table in ("xcom", "task_instance", "serialized_dag", "import_error", "dag_run", "dag", "connection"):
        op.drop_table(table)
