"""The Core tables are the schema; the typed models map them; the run path never loads the ORM."""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.types import TypeDecorator

from zonda.metastore import models, tables
from zonda.metastore.base import Base
from zonda.metastore.db import Metastore

WHEN = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
MODELS = [
    models.DagModel,
    models.SerializedDagModel,
    models.DagRunModel,
    models.TaskInstanceModel,
    models.TaskInstanceHistoryModel,
    models.JobModel,
    models.PoolModel,
    models.TriggerModel,
    models.XComModel,
    models.ConnectionModel,
    models.VariableModel,
    models.ImportErrorModel,
    models.CallbackRequestModel,
    models.UserModel,
    models.AuditLogModel,
    models.ApiTokenModel,
    models.DagGrantModel,
    models.DagTagModel,
    models.DagRunDeadlineModel,
]


def test_models_map_the_core_tables() -> None:
    assert Base.metadata is tables.metadata
    assert {model.__table__.name for model in MODELS} == set(tables.metadata.tables)
    for model in MODELS:
        assert model.__table__ is tables.metadata.tables[model.__table__.name]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_annotations_match_the_table(model: type) -> None:
    """``Mapped[X | None]`` exactly where the column is nullable, and one annotation per column."""
    hints = typing.get_type_hints(model, globalns=vars(models))
    mapped = {name: hint for name, hint in hints.items() if typing.get_origin(hint) is models.Mapped}
    assert set(mapped) == {column.key for column in model.__table__.columns}
    for column in model.__table__.columns:
        (inner,) = typing.get_args(mapped[column.key])
        optional = isinstance(inner, types.UnionType) and type(None) in typing.get_args(inner)
        assert optional == column.nullable, f"{model.__name__}.{column.key}"
        python_type = next(t for t in typing.get_args(inner) or (inner,) if t is not type(None))
        column_type = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
        assert issubclass(column_type.python_type, python_type), f"{model.__name__}.{column.key}"


def test_core_insert_fills_filename_hash(store: Metastore) -> None:
    with store.engine.begin() as conn:
        conn.execute(tables.import_error.insert().values(filename="/dags/x.py", timestamp=WHEN))
        row = conn.execute(select(tables.import_error.c.filename_hash)).scalar_one()
    assert row == tables.filename_hash("/dags/x.py") == models.filename_hash("/dags/x.py")


def test_long_text_holds_more_than_64_kib(store: Metastore) -> None:
    # LONGTEXT on MySQL/MariaDB (plain TEXT stops at 64 KiB there), TEXT elsewhere.
    big = "x" * 200_000
    with store.engine.begin() as conn:
        conn.execute(tables.dag.insert().values(dag_id="d", tags=big))
        assert conn.execute(select(tables.dag.c.tags)).scalar_one() == big


_HOT_PATH = """
import sys
from datetime import datetime, UTC
import zonda.metastore.db, zonda.metastore.tables, zonda.runner.store
from zonda.dagbag import record_import_errors
from zonda.metastore.db import Metastore
from zonda.runner.store import DagRunInfo, MetastoreRunStore

url = sys.argv[1]
Metastore(url).ensure_ready(auto_init=False)
store = MetastoreRunStore(Metastore(url))
when = datetime(2024, 1, 1, tzinfo=UTC)
run = DagRunInfo("d", "manual__1", when, when, when)
store.create_dag_run(run)
store.create_task_instances(run, [{"task_id": "a"}, {"task_id": "b"}])
store.expand_task_instances(run, "b", 2, {})
assert store.start_task_instance_in_process(run, "a", -1, {"pid": 7, "try_number": 1})
assert store.finish_owned_task_instance(run, "a", -1, {"state": "success", "end_date": when}, pid=7)
store.set_xcom(run, "a", -1, "return_value", "1")
assert store.get_xcoms(run, ["a"], "return_value") == [("a", -1, "1")]
store.clear_xcoms(run, "a", -1)
assert list(store.previous_task_states("d", "a", when)) == []
run.state, run.end_date = "success", when
store.update_dag_run(run)
store.close()

class Bag:
    files = ["/dags/broken.py"]
    import_errors = {"/dags/broken.py": "Traceback ..."}

record_import_errors(store.metastore, Bag())
print(sorted(m for m in ("sqlalchemy.orm", "alembic", "sqlalchemy.dialects.mysql", "zonda.metastore.models")
             if m in sys.modules))
"""


def test_run_path_loads_neither_the_orm_nor_alembic(metastore: Metastore) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _HOT_PATH, metastore.url], check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    assert out == "[]"
    with metastore.session() as session:
        ti = session.scalars(select(models.TaskInstanceModel).where(models.TaskInstanceModel.task_id == "a")).one()
        assert (ti.state, ti.end_date) == ("success", datetime(2024, 1, 1, tzinfo=UTC))
        assert sorted(session.scalars(select(models.TaskInstanceModel.map_index))) == [-1, 0, 1]
        error = session.scalars(select(models.ImportErrorModel)).one()
        assert error.filename_hash == models.filename_hash("/dags/broken.py")
