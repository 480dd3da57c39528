"""Readable names: ``task_instance.rendered_map_index`` (a mapped instance's ``map_index_template``, rendered
after it ran), ``task_instance.task_display_name`` and ``dag.dag_display_name`` (shown where ids show).

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("rendered_map_index", sa.String(250), nullable=True))
        batch.add_column(sa.Column("task_display_name", sa.String(2000), nullable=True))
    with op.batch_alter_table("dag") as batch:
        batch.add_column(sa.Column("dag_display_name", sa.String(2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag") as batch:
        batch.drop_column("dag_display_name")
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("task_display_name")
        batch.drop_column("rendered_map_index")
