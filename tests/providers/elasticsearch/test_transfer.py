"""SqlToElasticsearchOperator from the real local PostgreSQL into the real noida-db server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zonda import DAG
from zonda.exceptions import ZondaException
from zonda.testing import run_dag
from zonda.transfers import BaseTransferOperator
from zonda_elasticsearch.hooks import ElasticsearchHook
from zonda_elasticsearch.operators import DocumentsRejected
from zonda_elasticsearch.transfers import SqlToElasticsearchOperator, column_names
from zonda_postgres.hooks import PostgresHook

pytestmark = [pytest.mark.elasticsearch, pytest.mark.postgres]

START = datetime(2024, 1, 1, tzinfo=UTC)
MAPPING = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "long"},
        "name": {"type": "keyword"},
        "price": {"type": "double"},
        "created": {"type": "date"},
        "code": {"type": "integer"},
    },
}


@pytest.fixture
def orders(postgres_url: str, monkeypatch: pytest.MonkeyPatch, es_conn: str) -> str:
    """``orders_db``: a fresh PostgreSQL database with 20,000 orders; every 1,000th has a code that is not a
    number, which the index's strict mapping rejects."""
    monkeypatch.setenv("ZONDA_CONN_ORDERS_DB", postgres_url.replace("postgresql://", "postgres://", 1))
    PostgresHook("orders_db").run(
        """
        CREATE TABLE orders (id bigint PRIMARY KEY, name text, price numeric(10, 2), created timestamptz, code text);
        INSERT INTO orders
        SELECT i, 'order-' || i, (i % 500) / 4.0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
               CASE WHEN i % 1000 = 0 THEN 'code-' || i ELSE (i % 97)::text END
        FROM generate_series(1, 20000) AS i;
        """
    )
    return "orders_db"


def test_twenty_thousand_rows_stream_in_batches_and_rejections_are_reported(orders: str, es_index: str) -> None:
    es = ElasticsearchHook("elasticsearch_default")
    es.create_index(es_index, mappings=MAPPING)
    op = SqlToElasticsearchOperator(
        task_id="copy",
        sql_conn_id=orders,
        sql="SELECT id, name, price, created, code FROM orders ORDER BY id",
        elasticsearch_conn_id="elasticsearch_default",
        index=es_index,
        id_field="id",
        batch_size=3000,
        refresh=True,
        fail_on_rejected=False,
    )
    assert isinstance(op, BaseTransferOperator)
    report = op.execute({})
    assert (report["rows_read"], report["rows_indexed"], report["rows_rejected"]) == (20_000, 19_980, 20)
    assert report["rows_dropped"] == 0 and report["batches"] == 7  # 6 x 3000 + 2000
    rejected = report["errors"]
    assert [error["id"] for error in rejected] == [str(i) for i in range(1000, 20_001, 1000)]
    assert {(error["status"], error["error_type"]) for error in rejected} == {(400, "document_parsing_exception")}
    assert "[code]" in rejected[0]["reason"] and rejected[0]["position"] == 999
    assert es.count(es_index) == 19_980
    doc = es.get_conn().get(index=es_index, id="123")["_source"]
    # numeric(10, 2) -> a float; timestamptz -> ISO 8601 text; text stays text.
    assert doc == {"id": 123, "name": "order-123", "price": 30.75, "created": "2024-01-01T02:03:00+00:00", "code": "26"}
    # Running again replaces the same ids instead of adding documents (on the first 2,000 rows: noida-db
    # is slow at overwriting documents, and the point is the same for 2,000 as for 20,000).
    again = SqlToElasticsearchOperator(
        task_id="copy_again",
        sql_conn_id=orders,
        sql="SELECT id, name, price, created, code FROM orders WHERE id <= 2000",
        index=es_index,
        id_field="id",
        refresh=True,
        fail_on_rejected=False,
    ).execute({})
    assert (again["rows_indexed"], again["rows_rejected"]) == (1998, 2)
    assert es.count(es_index) == 19_980


def test_rejections_fail_the_task_with_the_report(orders: str, es_index: str, zonda_metastore) -> None:
    ElasticsearchHook("elasticsearch_default").create_index(es_index, mappings=MAPPING)
    with DAG("pg_to_es", start_date=START, schedule=None) as dag:
        SqlToElasticsearchOperator(
            task_id="copy",
            sql_conn_id=orders,
            sql="SELECT * FROM orders WHERE id <= {{ params.upto }}",
            index=es_index,
            id_field="id",
            batch_size=1000,
            params={"upto": 2500},
        )
    result = run_dag(dag, START, metastore=zonda_metastore)
    ti = result.ti("copy")
    assert ti.state == "failed"
    assert "read 2,500 rows; indexed 2,498 of 2,500 documents" in (ti.error or "")
    assert "id '1000'" in (ti.error or "") and "id '2000'" in (ti.error or "")
    report = ti.xcom_pull(task_ids="copy", key="transfer_report")
    assert (report["rows_read"], report["rows_indexed"], report["rows_rejected"]) == (2500, 2498, 2)


def test_parameters_transform_and_dropped_rows(orders: str, es_index: str) -> None:
    def only_even(row: dict) -> dict | None:
        return {**row, "name": row["name"].upper()} if row["id"] % 2 == 0 else None

    op = SqlToElasticsearchOperator(
        task_id="copy",
        sql_conn_id=orders,
        sql="SELECT id, name FROM orders WHERE id <= %(upto)s",
        parameters={"upto": 10},
        index=es_index,
        id_field="id",
        transform=only_even,
        refresh=True,
    )
    report = op.execute({})
    assert (report["rows_read"], report["rows_indexed"], report["rows_dropped"]) == (10, 5, 5)
    es = ElasticsearchHook("elasticsearch_default")
    assert es.get_conn().get(index=es_index, id="4")["_source"] == {"id": 4, "name": "ORDER-4"}


def test_the_column_names_and_the_mistakes_that_stop_a_transfer_early(orders: str, es_index: str) -> None:
    assert column_names(PostgresHook(orders), "SELECT id, price AS amount FROM orders;") == ["id", "amount"]
    missing_key = SqlToElasticsearchOperator(
        task_id="x", sql_conn_id=orders, sql="SELECT name FROM orders", index=es_index, id_field="id"
    )
    with pytest.raises(ZondaException, match="id_field 'id' is not a column of the query"):
        missing_key.execute({})
    twice = SqlToElasticsearchOperator(
        task_id="y", sql_conn_id=orders, sql="SELECT id, name, name FROM orders", index=es_index
    )
    with pytest.raises(ZondaException, match=r"column\(s\) name more than once"):
        twice.execute({})
    assert ElasticsearchHook("elasticsearch_default").index_exists(es_index) is False  # nothing was written


def test_a_connection_type_without_a_sql_hook(monkeypatch: pytest.MonkeyPatch, es_conn: str, es_index: str) -> None:
    monkeypatch.setenv("ZONDA_CONN_WEIRD", "nosuchdb://host/db")
    op = SqlToElasticsearchOperator(task_id="x", sql_conn_id="weird", sql="SELECT 1", index=es_index)
    with pytest.raises(ZondaException, match="no installed provider has a hook for conn type 'nosuchdb'"):
        op.execute({})
    monkeypatch.setenv("ZONDA_CONN_NOT_SQL", "elasticsearch://127.0.0.1:9/http")
    op = SqlToElasticsearchOperator(task_id="y", sql_conn_id="not_sql", sql="SELECT 1", index=es_index)
    with pytest.raises(ZondaException, match=r"ElasticsearchHook \(connection 'not_sql'\) cannot stream rows"):
        op.execute({})


def test_documents_rejected_carries_the_report(orders: str, es_index: str) -> None:
    ElasticsearchHook("elasticsearch_default").create_index(es_index, mappings=MAPPING)
    op = SqlToElasticsearchOperator(
        task_id="copy", sql_conn_id=orders, sql="SELECT * FROM orders WHERE id = 1000", index=es_index, id_field="id"
    )
    with pytest.raises(DocumentsRejected) as info:
        op.execute({})
    assert info.value.report.rejected == 1 and info.value.report.errors[0].id == "1000"
