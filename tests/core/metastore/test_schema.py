"""Schema life cycle: migrations, reset, check, ensure_ready, and that the migrations produce the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

import zonda.metastore
from zonda.exceptions import MetastoreError
from zonda.metastore import HEAD_REVISION
from zonda.metastore.base import Base
from zonda.metastore.db import Metastore
from zonda.metastore.models import DagModel

ZONDA_TABLES = {"dag", "serialized_dag", "dag_run", "task_instance", "xcom", "connection", "import_error", "variable"}


def _tables(store: Metastore) -> set[str]:
    return set(inspect(store.engine).get_table_names())


def test_head_revision_constant_is_the_alembic_head(sqlite_url: str) -> None:
    assert Metastore(sqlite_url).head_revision() == HEAD_REVISION


def test_init_creates_schema_and_is_idempotent(metastore_url: str) -> None:
    store = Metastore(metastore_url)
    try:
        assert store.current_revision() is None
        store.init()
        assert store.current_revision() == HEAD_REVISION
        assert ZONDA_TABLES | {"alembic_version"} <= _tables(store)
        with store.session() as session:
            session.add(DagModel(dag_id="kept"))
        store.init()
        store.migrate()
        assert store.current_revision() == HEAD_REVISION
        with store.session() as session:
            assert session.scalars(select(DagModel.dag_id)).all() == ["kept"]
    finally:
        store.dispose()


def test_migrated_schema_matches_models(store: Metastore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_schema_comparison_detects_drift(metastore: Metastore) -> None:
    # Proof that the empty diff above means something.
    with metastore.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_dag_run_state"))
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert [(op[0], op[1].name) for op in diff] == [("add_index", "ix_dag_run_state")]


def test_downgrade_to_base_then_upgrade(store: Metastore) -> None:
    with store.engine.begin() as conn:
        command.downgrade(store.alembic_config(conn), "base")
    assert not (ZONDA_TABLES & _tables(store))
    store.migrate()
    assert store.current_revision() == HEAD_REVISION


def test_reset_drops_data_and_recreates_schema(store: Metastore) -> None:
    with store.session() as session:
        session.add(DagModel(dag_id="gone"))
    store.reset()
    assert store.current_revision() == HEAD_REVISION
    with store.session() as session:
        assert session.scalars(select(DagModel)).all() == []


def test_check_reports_ok_and_not_initialized(sqlite_url: str) -> None:
    store = Metastore(sqlite_url)
    result = store.check()
    assert result["reachable"] is True
    assert result["ok"] is False
    assert result["current_revision"] is None
    assert "zonda db init" in result["error"]
    store.init()
    result = store.check()
    assert result == {
        "url": sqlite_url,
        "reachable": True,
        "current_revision": HEAD_REVISION,
        "head_revision": HEAD_REVISION,
        "ok": True,
        "error": None,
    }


def test_ensure_ready_auto_inits_an_empty_database(metastore_url: str) -> None:
    store = Metastore(metastore_url)
    try:
        with pytest.raises(MetastoreError, match="zonda db init"):
            store.ensure_ready(auto_init=False)
        store.ensure_ready(auto_init=True)
        assert store.current_revision() == HEAD_REVISION
        store.ensure_ready(auto_init=False)  # up to date: a no-op
    finally:
        store.dispose()


def test_ensure_ready_outdated_revision_says_migrate(metastore: Metastore) -> None:
    # What a user sees after upgrading Zonda (whose migrations now end at a newer head) without migrating.
    with metastore.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(
        MetastoreError, match=rf"revision 0001 but this Zonda needs {HEAD_REVISION}; run `zonda db migrate`"
    ):
        metastore.ensure_ready(auto_init=True)


def test_ensure_ready_unknown_revision_says_upgrade_zonda(metastore: Metastore) -> None:
    with metastore.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MetastoreError, match="newer Zonda"):
        metastore.ensure_ready(auto_init=True)
    assert metastore.check()["ok"] is False


def test_ensure_ready_tables_without_version_table(metastore: Metastore) -> None:
    with metastore.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(MetastoreError, match="zonda db reset"):
        metastore.ensure_ready(auto_init=True)


def test_from_settings_uses_sql_alchemy_conn(zonda_home, monkeypatch, sqlite_url: str) -> None:
    from zonda.config import load_settings

    assert Metastore.from_settings(load_settings()).url == f"sqlite:///{zonda_home / 'zonda.db'}"
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", sqlite_url)
    assert Metastore.from_settings(load_settings()).url == sqlite_url


def test_session_rolls_back_on_error(metastore: Metastore) -> None:
    with pytest.raises(RuntimeError), metastore.session() as session:
        session.add(DagModel(dag_id="rolled_back"))
        session.flush()
        raise RuntimeError("boom")
    with metastore.session() as session:
        assert session.get(DagModel, "rolled_back") is None


def _run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def test_import_is_light() -> None:
    out = _run_python(
        "import sys, zonda.metastore; print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))"
    )
    assert out == "[]"


def test_ensure_ready_does_not_import_alembic(metastore: Metastore) -> None:
    out = _run_python(
        "import sys; from zonda.metastore import Metastore; "
        f"Metastore({metastore.url!r}).ensure_ready(auto_init=False); print('alembic' in sys.modules)"
    )
    assert out == "False"


def test_public_names() -> None:
    for name in zonda.metastore.__all__:
        assert getattr(zonda.metastore, name) is not None
    with pytest.raises(AttributeError):
        _ = zonda.metastore.NoSuchThing
