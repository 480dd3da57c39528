"""The ``user_processing_http_postgres`` example end to end: a loopback users API and the real PostgreSQL."""

from __future__ import annotations

import importlib
import json
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from zonda.dagbag import DagBag
from zonda.testing import run_dag

MODULE = "zonda_http.example_dags.example_user_processing_http_postgres"

USERS = {
    "2024-01-02": {"first": "Ada", "last": "Lovelace", "country": "United Kingdom", "username": "countess"},
    "2024-01-03": {"first": "Grace", "last": "Hopper", "country": "United States", "username": "amazing"},
}


def _user_api(h):
    """``GET /api/?seed=<ds>``: one randomuser.me-shaped user per seed; 404 for anything else."""
    parts = urlsplit(h.path)
    seed = parse_qs(parts.query).get("seed", [""])[0]
    if parts.path != "/api/" or seed not in USERS:
        return 404, {}, "no such user"
    u = USERS[seed]
    body = {
        "results": [
            {
                "name": {"title": "Dr", "first": u["first"], "last": u["last"]},
                "location": {"country": u["country"], "city": "Somewhere"},
                "email": f"  {u['first']}.{u['last']}@Example.COM ",
                "login": {"username": u["username"], "password": "hunter22"},
            }
        ],
        "info": {"seed": seed, "results": 1},
    }
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.fixture
def example(serve, postgres_url, zonda_home, monkeypatch):
    server = serve(_user_api)
    monkeypatch.setenv(
        "ZONDA_CONN_USER_API",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": server.port, "schema": "http"}),
    )
    monkeypatch.setenv("ZONDA_CONN_POSTGRES_DEFAULT", postgres_url.replace("postgresql://", "postgres://", 1))
    module = importlib.reload(importlib.import_module(MODULE))
    return module.dag, server, postgres_url


def _rows(postgres_url: str) -> list[tuple]:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute(
            "SELECT email, firstname, lastname, country, username, ds::text FROM users ORDER BY ds"
        ).fetchall()


def test_fetches_processes_stores_and_queries_a_user(example) -> None:
    dag, server, postgres_url = example
    result = run_dag(dag, datetime(2024, 1, 2))
    assert result.succeeded, {ti.task_id: ti.error for ti in result.task_instances if ti.error}
    assert set(result.states().values()) == {"success"}
    assert _rows(postgres_url) == [
        ("ada.lovelace@example.com", "Ada", "Lovelace", "United Kingdom", "countess", "2024-01-02")
    ]
    queried = result.ti("query_users").xcom_pull(task_ids="query_users")
    assert queried == [["ada.lovelace@example.com", "Ada", "Lovelace", "United Kingdom"]]
    assert all("seed=2024-01-02" in r["path"] for r in server.requests)  # the run's ds is the seed
    assert "hunter22" not in json.dumps(result.ti("process_user").xcom_pull(task_ids="process_user"))

    # Idempotent: the same day again leaves one row; another day adds its own.
    assert run_dag(dag, datetime(2024, 1, 2)).succeeded
    assert len(_rows(postgres_url)) == 1
    assert run_dag(dag, datetime(2024, 1, 3)).succeeded
    assert [row[1] for row in _rows(postgres_url)] == ["Ada", "Grace"]


def test_the_example_loads_beside_the_core_user_processing(tmp_path) -> None:
    """Both examples in one DAG folder: two DAG ids, no clash, no import error."""
    import shutil

    import zonda.example_dags.example_user_processing as core_example

    module = importlib.import_module(MODULE)
    shutil.copy(module.__file__, tmp_path / "provider_example.py")
    shutil.copy(core_example.__file__, tmp_path / "core_example.py")
    bag = DagBag(tmp_path).collect()
    assert not bag.import_errors
    assert {"user_processing", "user_processing_http_postgres"} <= set(bag.dags)
    assert bag.dags["user_processing_http_postgres"].schedule == "@daily"
