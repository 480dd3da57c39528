"""Every model round-trips on every backend; constraints and cascades hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from zonda.metastore.db import Metastore
from zonda.metastore.models import (
    ConnectionModel,
    DagModel,
    DagRunModel,
    ImportErrorModel,
    SerializedDagModel,
    TaskInstanceModel,
    XComModel,
    filename_hash,
)

WHEN = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
LONG_ID = "x" * 250


def _add_run(store: Metastore, dag_id: str = "etl", run_id: str = "manual__1") -> int:
    with store.session() as session:
        run = DagRunModel(dag_id=dag_id, run_id=run_id, run_type="manual", state="queued")
        session.add(run)
        session.flush()
        return run.id


def test_dag_and_serialized_dag_roundtrip(store: Metastore) -> None:
    with store.session() as session:
        session.add(
            DagModel(
                dag_id=LONG_ID,
                fileloc="/dags/etl.py",
                description="Extract, transform, load ✓",
                schedule="@daily",
                timetable_description="At 00:00",
                tags=json.dumps(["etl", "nightly"]),
                owners="airflow",
                max_active_runs=1,
                max_active_tasks=4,
                last_parsed_time=WHEN,
                next_dagrun=WHEN + timedelta(days=1),
                next_dagrun_data_interval_start=WHEN,
                next_dagrun_data_interval_end=WHEN + timedelta(days=1),
            )
        )
        session.flush()
        session.add(SerializedDagModel(dag_id=LONG_ID, data=json.dumps({"tasks": []}), dag_hash="a" * 32))
    with store.session() as session:
        dag = session.get(DagModel, LONG_ID)
        assert dag is not None
        assert (dag.is_paused, dag.is_active, dag.has_import_errors) == (False, True, False)
        assert dag.description == "Extract, transform, load ✓"
        assert json.loads(dag.tags) == ["etl", "nightly"]
        assert dag.last_parsed_time == WHEN
        assert dag.last_parsed_time.tzinfo is not None
        assert dag.next_dagrun_data_interval_end == WHEN + timedelta(days=1)
        serialized = session.get(SerializedDagModel, LONG_ID)
        assert serialized is not None
        assert serialized.last_updated.tzinfo is not None
        session.delete(dag)
    with store.session() as session:  # ON DELETE CASCADE
        assert session.get(SerializedDagModel, LONG_ID) is None


def test_dag_run_roundtrip_with_aware_datetimes(store: Metastore) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2024, 6, 1, 12, 30, 15, 654321, tzinfo=paris)
    with store.session() as session:
        session.add(
            DagRunModel(
                dag_id="etl",
                run_id="scheduled__2024-06-01T10:30:15",
                logical_date=local,
                data_interval_start=WHEN,
                data_interval_end=WHEN + timedelta(microseconds=1),
                run_type="scheduled",
                state="running",
                conf=json.dumps({"full": True}),
                queued_at=WHEN,
                start_date=WHEN,
                external_trigger=True,
                last_scheduling_decision=WHEN,
            )
        )
    with store.session() as session:
        run = session.scalars(select(DagRunModel)).one()
        assert run.logical_date == local
        assert run.logical_date.utcoffset() == timedelta(0)
        assert run.logical_date.hour == 10 and run.logical_date.microsecond == 654321
        assert run.data_interval_end - run.data_interval_start == timedelta(microseconds=1)
        assert run.end_date is None
        assert run.external_trigger is True
        assert json.loads(run.conf) == {"full": True}
        assert run.updated_at.tzinfo is not None
        # The datetime columns also filter correctly with aware parameters.
        assert session.scalar(select(func.count()).where(DagRunModel.logical_date == local)) == 1


def test_naive_datetime_is_rejected(store: Metastore) -> None:
    with pytest.raises(StatementError, match="naive datetime"), store.session() as session:
        session.add(
            DagRunModel(dag_id="etl", run_id="r", run_type="manual", state="queued", logical_date=datetime(2024, 1, 1))
        )


def test_task_instance_roundtrip_and_defaults(store: Metastore) -> None:
    run_pk = _add_run(store)
    with store.session() as session:
        session.add(
            TaskInstanceModel(
                dag_run_id=run_pk,
                dag_id="etl",
                run_id="manual__1",
                task_id="extract",
                state="success",
                try_number=1,
                max_tries=2,
                hostname="worker-1",
                unixname="zonda",
                pid=4242,
                queued_dttm=WHEN,
                start_date=WHEN,
                end_date=WHEN + timedelta(seconds=1.5),
                duration=1.5,
                operator="BashOperator",
                priority_weight=3,
                executor_config=json.dumps({}),
                next_kwargs=json.dumps({"event": None}),
                rendered_fields=json.dumps({"bash_command": "echo 2024-02-29"}),
            )
        )
        session.add(TaskInstanceModel(dag_run_id=run_pk, dag_id="etl", run_id="manual__1", task_id="load"))
    with store.session() as session:
        extract, load = session.scalars(select(TaskInstanceModel).order_by(TaskInstanceModel.task_id)).all()
        assert extract.end_date - extract.start_date == timedelta(seconds=1.5)
        assert extract.duration == 1.5
        assert json.loads(extract.rendered_fields) == {"bash_command": "echo 2024-02-29"}
        assert (load.state, load.map_index, load.try_number, load.max_tries) == (None, -1, 0, 0)
        assert (load.pool, load.pool_slots) == ("default_pool", 1)


def test_task_instance_unique_key(store: Metastore) -> None:
    run_pk = _add_run(store)
    key = {"dag_run_id": run_pk, "dag_id": "etl", "run_id": "manual__1", "task_id": LONG_ID}
    with store.session() as session:
        session.add_all([TaskInstanceModel(**key, map_index=0), TaskInstanceModel(**key, map_index=1)])
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(TaskInstanceModel(**key, map_index=1))


def test_dag_run_unique_key(store: Metastore) -> None:
    _add_run(store, run_id=LONG_ID)
    _add_run(store, dag_id="other", run_id=LONG_ID)
    with pytest.raises(IntegrityError):
        _add_run(store, run_id=LONG_ID)


def test_xcom_roundtrip_with_a_1_mib_value(store: Metastore) -> None:
    run_pk = _add_run(store)
    value = json.dumps({"rows": "é" * (1024 * 1024)})  # 1 MiB of characters, 2 MiB of UTF-8
    with store.session() as session:
        session.add(
            XComModel(
                dag_run_id=run_pk,
                task_id=LONG_ID,
                key=LONG_ID,
                dag_id="etl",
                run_id="manual__1",
                value=value,
                timestamp=WHEN,
            )
        )
    with store.session() as session:
        xcom = session.get(XComModel, (run_pk, LONG_ID, -1, LONG_ID))
        assert xcom is not None
        assert xcom.value == value
        assert xcom.timestamp == WHEN
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(XComModel(dag_run_id=run_pk, task_id=LONG_ID, key=LONG_ID, dag_id="etl", run_id="manual__1"))


def test_deleting_a_dag_run_cascades(store: Metastore) -> None:
    doomed = _add_run(store, run_id="doomed")
    kept = _add_run(store, run_id="kept")
    with store.session() as session:
        for pk, run_id in ((doomed, "doomed"), (kept, "kept")):
            session.add(TaskInstanceModel(dag_run_id=pk, dag_id="etl", run_id=run_id, task_id="t"))
            session.add(XComModel(dag_run_id=pk, dag_id="etl", run_id=run_id, task_id="t", key="return_value"))
    with store.session() as session:
        session.execute(delete(DagRunModel).where(DagRunModel.id == doomed))
    with store.session() as session:
        assert session.scalars(select(TaskInstanceModel.run_id)).all() == ["kept"]
        assert session.scalars(select(XComModel.run_id)).all() == ["kept"]


def test_task_instance_needs_an_existing_dag_run(store: Metastore) -> None:
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(TaskInstanceModel(dag_run_id=424242, dag_id="etl", run_id="nope", task_id="t"))


def test_connection_roundtrip_and_unique_conn_id(store: Metastore) -> None:
    with store.session() as session:
        session.add(
            ConnectionModel(
                conn_id="postgres_default",
                conn_type="postgres",
                host="127.0.0.1",
                schema="public",
                login="postgres",
                password="gAAAAAB-token",
                port=5432,
                extra=json.dumps({"sslmode": "disable"}),
                is_encrypted=True,
            )
        )
    with store.session() as session:
        conn = session.scalars(select(ConnectionModel)).one()
        assert (conn.schema, conn.port, conn.is_encrypted, conn.is_extra_encrypted) == (
            "public",
            5432,
            True,
            False,
        )
        assert "gAAAA" not in repr(conn)
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(ConnectionModel(conn_id="postgres_default", conn_type="http"))


def test_import_error_roundtrip_and_filename_hash(store: Metastore) -> None:
    path = "/dags/" + "deep/" * 200 + "broken.py"  # over 1000 characters: only the hash is indexed
    with store.session() as session:
        session.add(ImportErrorModel(filename=path, stacktrace="Traceback...\n" * 10_000))
    with store.engine.begin() as conn:  # Core inserts get the hash from the column default
        conn.execute(ImportErrorModel.__table__.insert().values(filename="/dags/core.py", timestamp=WHEN))
    with store.session() as session:
        found = session.scalars(
            select(ImportErrorModel).where(ImportErrorModel.filename_hash == filename_hash(path))
        ).one()
        assert found.filename == path
        assert found.timestamp.tzinfo is not None
        found.filename = "/dags/renamed.py"
    with store.session() as session:
        hashes = dict(session.execute(select(ImportErrorModel.filename, ImportErrorModel.filename_hash)).all())
    assert hashes == {name: filename_hash(name) for name in ("/dags/renamed.py", "/dags/core.py")}


def test_datetimes_are_stored_as_naive_utc(store: Metastore) -> None:
    """Other tools reading the database see UTC wall-clock time, whatever zone the value was written in."""
    with store.session() as session:
        session.add(DagModel(dag_id="d", last_parsed_time=WHEN.astimezone(timezone(timedelta(hours=-5)))))
    with store.engine.connect() as conn:
        raw = conn.execute(text("SELECT last_parsed_time FROM dag")).scalar_one()
    if isinstance(raw, str):  # SQLite
        raw = datetime.fromisoformat(raw)
    assert raw == WHEN.replace(tzinfo=None)
