"""task_instance.log_server and task_instance_history.log_server: where a try's log can be fetched from.

A worker on another machine keeps its tries' logs on its own disk and serves them over HTTP (signed requests
only); the scheduler's side reads a log from the address recorded with the try when it has no local copy.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("task_instance", "task_instance_history"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("log_server", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    for table in ("task_instance_history", "task_instance"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("log_server")
