"""Helpers of the admin pages' tests: a DAG with params stored as the DAG processor stores it, and POSTs that
carry the session's CSRF token."""

from __future__ import annotations

import textwrap
from typing import Any

PARAMS_DAG = """
from datetime import datetime
from zonda import DAG, Param
from zonda.operators import EmptyOperator

with DAG(
    "{dag_id}",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    params={{
        "count": Param(3, type="integer", minimum=1, description="How many rows"),
        "ratio": Param(0.5, type="number"),
        "mode": Param("fast", enum=["fast", "slow"], description={description!r}),
        "dry_run": Param(False, type="boolean"),
        "tags": Param(["a"], type="array"),
        "target": Param(type="string", minLength=2, description="Where to write"),
    }},
):
    EmptyOperator(task_id="only")
"""


def store_params_dag(web: Any, dag_id: str = "params_dag", description: str = "Speed") -> None:
    """Write a DAG with params into the DAGs folder and let the DAG processor store it."""
    from zonda.dag_processing import DagProcessor

    folder = web.settings.dags_folder
    folder.mkdir(parents=True, exist_ok=True)
    source = textwrap.dedent(PARAMS_DAG.format(dag_id=dag_id, description=description)).lstrip()
    (folder / f"{dag_id}.py").write_text(source, encoding="utf-8")
    with DagProcessor(web.settings, web.store) as processor:
        report = processor.run_once(full=True)
    assert not report.errors, report.errors


def post(web: Any, client: Any, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """POST ``data`` with the session's CSRF token."""
    return client.post(path, data={**(data or {}), "csrf_token": web.token(client)}, **kwargs)


def store_admin_fixtures(web: Any) -> None:
    """What the authorization table's admin rows act on: a DAG with params, and a connection, a variable, a pool
    and a user to edit, plus one of each to delete (the first role allowed deletes it; the next gets 404)."""
    from zonda.connection import Connection
    from zonda.operations.connections import add_connection
    from zonda.operations.pools import set_pool
    from zonda.operations.users import create_user
    from zonda.operations.variables import set_variable

    store_params_dag(web)
    for conn_id in ("table_conn", "table_conn_del"):
        add_connection(web.store, web.settings, Connection(conn_id=conn_id, conn_type="generic", password="pw"))
    for key in ("table_var", "table_var_del"):
        set_variable(web.settings, key, "value", metastore=web.store)
    for pool in ("table_pool", "table_pool_del"):
        set_pool(web.engine, pool, 2)
    for username in ("table_user", "table_user_del"):
        create_user(web.engine, username, "Viewer", "a long password", actor="(test)")
