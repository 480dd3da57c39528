"""Helpers of the API token and grant tests: tokens per role, DAG rows with tags, Bearer headers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from zonda.metastore import tables as t
from zonda.metastore.dag_tags import replace_dag_tags


def token_for(web: Any, role: str, days: float = 30, name: str = "test") -> str:
    """A fresh API token of the test user with ``role``."""
    from zonda.operations.api_tokens import create_token

    return create_token(web.engine, web.users[role], days=days, name=name, actor="(test)").token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def store_dags(engine: Any, dags: dict[str, list[str]]) -> None:
    """One active ``dag`` row per id, with its tags written as the DAG writers write them."""
    from zonda import serde

    with engine.begin() as conn:
        for dag_id, tags in dags.items():
            conn.execute(insert(t.dag).values(dag_id=dag_id, is_active=True, is_paused=False, tags=serde.dumps(tags)))
            replace_dag_tags(conn, dag_id, tags)
