"""Scheduling: jobs (scheduler/triggerer heartbeats), pools, triggers, and task-instance scheduling columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _long_text() -> sa.types.TypeEngine:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_type", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("hostname", sa.String(length=1000), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("executor_class", sa.String(length=1000), nullable=True),
        sa.Column("start_date", _utc_datetime(), nullable=True),
        sa.Column("end_date", _utc_datetime(), nullable=True),
        sa.Column("latest_heartbeat", _utc_datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    op.create_index("ix_job_job_type_state", "job", ["job_type", "state"], unique=False)
    op.create_table(
        "slot_pool",
        sa.Column("pool", sa.String(length=256), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("include_deferred", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("pool", name=op.f("pk_slot_pool")),
    )
    op.create_table(
        "trigger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("classpath", sa.String(length=1000), nullable=False),
        sa.Column("kwargs", _long_text(), nullable=False),
        sa.Column("created_date", _utc_datetime(), nullable=False),
        sa.Column("triggerer_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger")),
    )
    op.create_index("ix_trigger_triggerer_id", "trigger", ["triggerer_id"], unique=False)
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("ready_at", _utc_datetime(), nullable=True))
        batch.add_column(sa.Column("queued_by_job_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_heartbeat_at", _utc_datetime(), nullable=True))
        batch.add_column(sa.Column("trigger_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trigger_timeout", _utc_datetime(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_task_instance_trigger_id_trigger"), "trigger", ["trigger_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_task_instance_trigger_id", ["trigger_id"], unique=False)
    op.bulk_insert(
        sa.table(
            "slot_pool",
            sa.column("pool", sa.String),
            sa.column("slots", sa.Integer),
            sa.column("description", sa.Text),
            sa.column("include_deferred", sa.Boolean),
        ),
        [{"pool": "default_pool", "slots": 128, "description": "Default pool", "include_deferred": False}],
    )


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        # The foreign key first: MySQL refuses to drop an index a foreign key uses.
        batch.drop_constraint(op.f("fk_task_instance_trigger_id_trigger"), type_="foreignkey")
        batch.drop_index("ix_task_instance_trigger_id")
        batch.drop_column("trigger_timeout")
        batch.drop_column("trigger_id")
        batch.drop_column("last_heartbeat_at")
        batch.drop_column("job_id")
        batch.drop_column("queued_by_job_id")
        batch.drop_column("ready_at")
    op.drop_index("ix_trigger_triggerer_id", table_name="trigger")
    op.drop_table("trigger")
    op.drop_table("slot_pool")
    op.drop_index("ix_job_job_type_state", table_name="job")
    op.drop_table("job")
