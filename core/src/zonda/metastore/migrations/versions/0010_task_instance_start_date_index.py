"""An index on ``task_instance (start_date, id)`` for the API's listings ordered by start date.

Without it, ``GET .../taskInstances?order_by=-start_date`` sorts every task instance to return a hundred (the
listings order by the bare column, NULL where each database puts it, so the index serves both directions).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_task_instance_start_date", "task_instance", ["start_date", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_task_instance_start_date", table_name="task_instance")
