"""task_instance_history and task_instance.running_since: every try's phases, for the Gantt view.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("running_since", _utc_datetime(), nullable=True))
    op.create_table(
        "task_instance_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=False),
        sa.Column("task_instance_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("queued_dttm", _utc_datetime(), nullable=True),
        sa.Column("start_date", _utc_datetime(), nullable=True),
        sa.Column("running_since", _utc_datetime(), nullable=True),
        sa.Column("end_date", _utc_datetime(), nullable=True),
        sa.Column("hostname", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["dag_run_id"],
            ["dag_run.id"],
            name=op.f("fk_task_instance_history_dag_run_id_dag_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_instance_history")),
    )
    op.create_index("ix_task_instance_history_dag_run_id", "task_instance_history", ["dag_run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("task_instance_history")
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("running_since")
