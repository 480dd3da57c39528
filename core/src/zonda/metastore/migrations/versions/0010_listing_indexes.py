"""Indexes for the API's listings: a DAG's runs, and a DAG's or a run's task instances, in the default order (id);
task instances by start date, of every DAG or of one.

Without them, ``GET /dags/x/dagRuns/~/taskInstances`` sorted every instance of the DAG to return the first
hundred, and ``order_by=-start_date`` every instance of the installation (the listings order by the bare column,
NULL where each database puts it, so an index serves both directions).

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


INDEXES = {
    "ix_dag_run_dag_id_id": ("dag_run", ["dag_id", "id"]),
    "ix_task_instance_dag_id_id": ("task_instance", ["dag_id", "id"]),
    # With only the one above, SQLite walked a DAG's every instance in id order to find one run's fifty.
    "ix_task_instance_dag_id_run_id_id": ("task_instance", ["dag_id", "run_id", "id"]),
    "ix_task_instance_start_date": ("task_instance", ["start_date", "id"]),
    "ix_task_instance_dag_id_start_date": ("task_instance", ["dag_id", "start_date", "id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, (table, _columns) in reversed(INDEXES.items()):
        op.drop_index(name, table_name=table)
