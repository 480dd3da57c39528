"""ElasticsearchSearchOperator and ElasticsearchIndexOperator against the real noida-db server, in DAG runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zonda import DAG, task
from zonda.exceptions import DagDefinitionError, XComSizeError
from zonda.testing import run_dag
from zonda_elasticsearch.hooks import ElasticsearchHook
from zonda_elasticsearch.operators import (
    DocumentsRejected,
    ElasticsearchIndexOperator,
    ElasticsearchSearchOperator,
)

pytestmark = pytest.mark.elasticsearch

START = datetime(2024, 1, 1, tzinfo=UTC)
COLORS = ("red", "green", "blue", "yellow")


def load(hook: ElasticsearchHook, index: str, count: int) -> None:
    docs = ({"n": i, "color": COLORS[i % 4], "price": i / 10} for i in range(count))
    report = hook.bulk_index(index, docs, id_field="n", chunk_size=5000, refresh=True)
    assert report.indexed == count


def test_search_to_xcom_with_total_hits_and_aggregations(es_conn: str, es_index: str) -> None:
    load(ElasticsearchHook(es_conn), es_index, 200)
    op = ElasticsearchSearchOperator(
        task_id="search",
        index=es_index,
        query={"term": {"color": "red"}},
        sort=[{"n": "desc"}],
        source=["n", "color"],
        aggs={"colors": {"terms": {"field": "color.keyword"}}, "top": {"max": {"field": "n"}}},
        max_hits=3,
    )
    result = op.execute({})
    assert result["total"] == 50 and result["count"] == 3
    assert [hit["_source"] for hit in result["hits"]] == [
        {"n": 196, "color": "red"},
        {"n": 192, "color": "red"},
        {"n": 188, "color": "red"},
    ]
    assert set(result["hits"][0]) == {"_index", "_id", "_score", "_source"}
    assert result["aggregations"]["top"]["value"] == 196
    assert result["aggregations"]["colors"]["buckets"] == [{"key": "red", "doc_count": 50}]
    assert json.loads(json.dumps(result)) == result


def test_templated_search_in_a_dag_run_with_a_lucene_query(es_conn: str, es_index: str) -> None:
    load(ElasticsearchHook(es_conn), es_index, 40)
    with DAG("es_search", start_date=START, schedule=None, params={"color": "blue", "size": "4"}) as dag:
        ElasticsearchSearchOperator(
            task_id="search",
            index="{{ params.index }}",
            query="color:{{ params.color }}",
            size="{{ params.size }}",
            sort='[{"n": "asc"}]',
            source='["n"]',
        )
    result = run_dag(dag, START, conf={"index": es_index})
    assert result.states() == {"search": "success"}
    value = result.ti("search").xcom_pull(task_ids="search")
    assert value["total"] == 10 and value["count"] == 10  # paged 4 at a time, every match collected
    assert [hit["_source"]["n"] for hit in value["hits"]] == list(range(2, 40, 4))


def test_search_pages_past_10000_hits_to_a_json_lines_file(es_conn: str, es_index: str, tmp_path: Path) -> None:
    load(ElasticsearchHook(es_conn), es_index, 12_000)
    out = tmp_path / "out" / "hits.jsonl"
    op = ElasticsearchSearchOperator(
        task_id="dump",
        index=es_index,
        query="*",
        size=5000,
        aggs={"avg_price": {"avg": {"field": "price"}}},
        output=str(out),
    )
    result = op.execute({})
    assert result == {
        "total": 12_000,
        "count": 12_000,
        "output": str(out),
        "aggregations": {"avg_price": {"value": pytest.approx(599.95)}},
    }
    lines = out.read_text().splitlines()
    assert len(lines) == 12_000
    ids = {json.loads(line)["_id"] for line in lines}
    assert ids == {str(i) for i in range(12_000)}
    assert sorted(p.name for p in out.parent.iterdir()) == ["hits.jsonl"]  # no partial file left behind


def test_search_over_the_xcom_limit_fails_early_and_says_to_use_a_file(
    es_conn: str, es_index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(ElasticsearchHook(es_conn), es_index, 3000)
    monkeypatch.setenv("ZONDA__XCOM__MAX_SIZE", "20000")
    op = ElasticsearchSearchOperator(task_id="too_big", index=es_index, size=500)
    with pytest.raises(XComSizeError) as info:
        op.execute({})
    message = str(info.value)
    assert "3,000 hits match" in message and "over the XCom limit of 19.5 KiB" in message
    assert "Write the hits to a file instead" in message and "output=" in message
    with DAG("es_too_big", start_date=START, schedule=None) as dag:
        ElasticsearchSearchOperator(task_id="too_big", index=es_index, size=500)
    result = run_dag(dag, START)
    assert result.states() == {"too_big": "failed"}
    assert "Write the hits to a file instead" in (result.ti("too_big").error or "")
    assert result.ti("too_big").xcom_pull(task_ids="too_big") is None  # nothing was pushed
    # Only aggregations (size=0) fit easily.
    small = ElasticsearchSearchOperator(
        task_id="aggs_only", index=es_index, size=0, aggs={"n": {"value_count": {"field": "n"}}}
    ).execute({})
    assert small == {"total": 3000, "count": 0, "hits": [], "aggregations": {"n": {"value": 3000}}}


def test_index_from_an_upstream_xcom_and_reruns_do_not_duplicate(es_conn: str, es_index: str) -> None:
    @task
    def produce() -> list[dict]:
        return [{"id": f"user-{i}", "name": f"User {i}", "age": 20 + i} for i in range(25)]

    with DAG("es_index", start_date=START, schedule=None) as dag:
        docs = produce()
        ElasticsearchIndexOperator(task_id="index", index=es_index, documents=docs, id_field="id", refresh=True)
    first = run_dag(dag, START)
    assert first.states() == {"produce": "success", "index": "success"}
    report = first.ti("index").xcom_pull(task_ids="index")
    assert (report["indexed"], report["rejected"], report["errors"]) == (25, 0, [])
    second = run_dag(dag, datetime(2024, 1, 2, tzinfo=UTC))  # a re-run: same ids
    assert second.states()["index"] == "success"
    hook = ElasticsearchHook(es_conn)
    assert hook.count(es_index) == 25
    assert hook.get_conn().get(index=es_index, id="user-3")["_source"] == {"id": "user-3", "name": "User 3", "age": 23}


def test_search_output_file_feeds_the_index_operator(es_conn: str, es_index: str, tmp_path: Path) -> None:
    hook = ElasticsearchHook(es_conn)
    load(hook, es_index, 300)
    copy = f"{es_index}-copy"
    path = tmp_path / "red.jsonl"
    try:
        with DAG("es_copy", start_date=START, schedule=None) as dag:
            search = ElasticsearchSearchOperator(
                task_id="search", index=es_index, query="color:red", size=40, output=str(path)
            )
            load_copy = ElasticsearchIndexOperator(
                task_id="load", index=copy, input_path="{{ ti.xcom_pull('search')['output'] }}", id_field="n"
            )
            search >> load_copy
        result = run_dag(dag, START)
        assert result.states() == {"search": "success", "load": "success"}
        assert result.ti("load").xcom_pull(task_ids="load")["indexed"] == 75
        hook.refresh(copy)
        assert hook.count(copy) == 75 and hook.count(copy, "color:blue") == 0
    finally:
        hook.delete_index(copy)


def test_index_fails_with_a_report_when_documents_are_rejected(
    es_conn: str, es_index: str, tmp_path: Path, zonda_metastore
) -> None:
    hook = ElasticsearchHook(es_conn)
    hook.create_index(es_index, mappings={"dynamic": "strict", "properties": {"n": {"type": "integer"}}})
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps({"n": i}) for i in range(10)] + [json.dumps({"n": "eleven"}), json.dumps({"n": 12, "x": 1})]
    path.write_text("\n".join(lines) + "\n\n")
    op = ElasticsearchIndexOperator(task_id="load", index=es_index, input_path=path, id_field="n", refresh=True)
    with pytest.raises(DocumentsRejected) as info:
        op.execute({})
    report = info.value.report
    assert (report.indexed, report.rejected) == (10, 2)
    assert [(e.position, e.id, e.status, e.error_type) for e in report.errors] == [
        (10, "eleven", 400, "document_parsing_exception"),
        (11, "12", 400, "strict_dynamic_mapping_exception"),
    ]
    assert "indexed 10 of 12 documents" in str(info.value) and "id 'eleven'" in str(info.value)
    with DAG("es_reject", start_date=START, schedule=None) as dag:
        ElasticsearchIndexOperator(task_id="load", index=es_index, input_path=str(path), id_field="n")
    result = run_dag(dag, START, metastore=zonda_metastore)
    ti = result.ti("load")
    assert ti.state == "failed" and "2 rejected" in (ti.error or "")
    pushed = ti.xcom_pull(task_ids="load", key="bulk_report")
    assert pushed["rejected"] == 2 and pushed["errors"][0]["id"] == "eleven"


def test_index_operator_arguments() -> None:
    with pytest.raises(DagDefinitionError, match="either documents= or input_path="):
        ElasticsearchIndexOperator(task_id="x", index="i")
    with pytest.raises(DagDefinitionError, match="op_type"):
        ElasticsearchIndexOperator(task_id="x", index="i", documents=[], op_type="upsert")
    assert set(ElasticsearchSearchOperator.template_fields) == {
        "index",
        "query",
        "size",
        "sort",
        "source",
        "aggs",
        "max_hits",
        "output_target",
    }


def test_documents_rendered_as_text_are_read_back(es_conn: str, es_index: str) -> None:
    """Without native rendering a template gives the repr of the list; it is parsed, not indexed as text."""
    op = ElasticsearchIndexOperator(
        task_id="load", index=es_index, documents="[{'k': 'a', 'v': 1}, {'k': 'b', 'v': 2}]", id_field="k", refresh=True
    )
    assert op.execute({})["indexed"] == 2
    assert ElasticsearchHook(es_conn).count(es_index) == 2
