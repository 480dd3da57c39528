"""Change feed: ``dag.updated_at`` and an index on the ``updated_at`` of dags, runs and task instances.

The web server's live updates ask once a second "what changed since then?" for all open tabs together; these
indexes keep that a range scan however long the history grows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        batch.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
                nullable=True,
            )
        )
    op.create_index("ix_dag_updated_at", "dag", ["updated_at"], unique=False)
    op.create_index("ix_dag_run_updated_at", "dag_run", ["updated_at"], unique=False)
    op.create_index("ix_task_instance_updated_at", "task_instance", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_task_instance_updated_at", table_name="task_instance")
    op.drop_index("ix_dag_run_updated_at", table_name="dag_run")
    op.drop_index("ix_dag_updated_at", table_name="dag")
    with op.batch_alter_table("dag") as batch:
        batch.drop_column("updated_at")
