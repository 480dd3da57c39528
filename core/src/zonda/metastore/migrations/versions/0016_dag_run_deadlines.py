"""Deadline alerts: one row per DAG run and alert, with the moment the run must be done by.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "dag_run_deadline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_run_id", sa.Integer(), nullable=False),
        sa.Column("alert_index", sa.Integer(), nullable=False),
        sa.Column("deadline_at", _utc_datetime(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("missed", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dag_run_id"], ["dag_run.id"], name=op.f("fk_dag_run_deadline_dag_run_id_dag_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_run_deadline")),
        sa.UniqueConstraint("dag_run_id", "alert_index", name=op.f("uq_dag_run_deadline_dag_run_id_alert_index")),
    )
    op.create_index("ix_dag_run_deadline_due", "dag_run_deadline", ["resolved", "deadline_at"], unique=False)


def downgrade() -> None:
    op.drop_table("dag_run_deadline")
