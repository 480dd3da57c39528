"""api_token, dag_grant and dag_tag: per-user API tokens, per-DAG grants, and DAG tags as rows.

``dag_tag`` repeats ``dag.tags`` (JSON text) one row per tag, so a grant by tag is an indexed ``EXISTS`` instead
of a text search; existing DAGs' tags are copied here, later parses keep it current.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc_datetime() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc_datetime(), nullable=False),
        sa.Column("expires_at", _utc_datetime(), nullable=False),
        sa.Column("last_used_at", _utc_datetime(), nullable=True),
        sa.Column("revoked_at", _utc_datetime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["web_user.id"], name=op.f("fk_api_token_user_id_web_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"], unique=False)
    op.create_table(
        "dag_grant",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("pattern", sa.String(length=250), nullable=False),
        sa.Column("like_pattern", sa.String(length=500), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["web_user.id"], name=op.f("fk_dag_grant_user_id_web_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_grant")),
        sa.UniqueConstraint("user_id", "kind", "pattern", name=op.f("uq_dag_grant_user_id_kind_pattern")),
    )
    op.create_table(
        "dag_tag",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.ForeignKeyConstraint(["dag_id"], ["dag.dag_id"], name=op.f("fk_dag_tag_dag_id_dag"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dag_id", "name", name=op.f("pk_dag_tag")),
    )
    op.create_index("ix_dag_tag_name", "dag_tag", ["name"], unique=False)
    _copy_tags()


def _copy_tags() -> None:
    """One ``dag_tag`` row per tag of every existing DAG (tags that are not a JSON list are skipped)."""
    conn = op.get_bind()
    dag = sa.table("dag", sa.column("dag_id", sa.String), sa.column("tags", sa.Text))
    dag_tag = sa.table("dag_tag", sa.column("dag_id", sa.String), sa.column("name", sa.String))
    rows: list[dict[str, str]] = []
    for dag_id, raw in conn.execute(sa.select(dag.c.dag_id, dag.c.tags).where(dag.c.tags.is_not(None))):
        try:
            tags = json.loads(raw)
        except ValueError:
            continue
        if isinstance(tags, list):
            rows.extend({"dag_id": dag_id, "name": str(tag)[:250]} for tag in dict.fromkeys(map(str, tags)))
    for start in range(0, len(rows), 500):
        conn.execute(sa.insert(dag_tag), rows[start : start + 500])


def downgrade() -> None:
    op.drop_table("dag_tag")
    op.drop_table("dag_grant")
    op.drop_table("api_token")
