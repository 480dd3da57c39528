"""es_search_pipeline: index a small book catalogue into Elasticsearch, search it, aggregate it, print a summary.

It uses the ``elasticsearch_default`` connection. ``zonda standalone`` starts a local Elasticsearch-compatible
server for it when that connection is not configured; elsewhere, point the connection at your cluster:

    export ZONDA_CONN_ELASTICSEARCH_DEFAULT='elasticsearch://elastic:PASSWORD@localhost:9200/https?ca_certs=/path/ca.crt'

Re-runs are safe: documents are indexed with their ISBN as id, so a second run replaces them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from zonda import DAG, task
from zonda_elasticsearch.operators import ElasticsearchIndexOperator, ElasticsearchSearchOperator

INDEX = "zonda-example-books"

MAPPINGS = {
    "properties": {
        "isbn": {"type": "keyword"},
        "title": {"type": "text"},
        "author": {"type": "keyword"},
        "genre": {"type": "keyword"},
        "pages": {"type": "integer"},
        "year": {"type": "integer"},
    }
}

BOOKS = [
    {
        "isbn": "978-1449355739",
        "title": "Learning Python",
        "author": "Lutz",
        "genre": "programming",
        "pages": 1648,
        "year": 2013,
    },
    {
        "isbn": "978-1492056355",
        "title": "Fluent Python",
        "author": "Ramalho",
        "genre": "programming",
        "pages": 1012,
        "year": 2022,
    },
    {
        "isbn": "978-1098125967",
        "title": "Python for Data Analysis",
        "author": "McKinney",
        "genre": "data",
        "pages": 579,
        "year": 2022,
    },
    {
        "isbn": "978-1449373320",
        "title": "Designing Data-Intensive Applications",
        "author": "Kleppmann",
        "genre": "data",
        "pages": 616,
        "year": 2017,
    },
    {
        "isbn": "978-1098108304",
        "title": "Fundamentals of Data Engineering",
        "author": "Reis",
        "genre": "data",
        "pages": 446,
        "year": 2022,
    },
    {"isbn": "978-0441172719", "title": "Dune", "author": "Herbert", "genre": "fiction", "pages": 896, "year": 1965},
    {
        "isbn": "978-0553293357",
        "title": "Foundation",
        "author": "Asimov",
        "genre": "fiction",
        "pages": 255,
        "year": 1951,
    },
]

with DAG(
    "es_search_pipeline",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    tags=["example", "elasticsearch"],
    doc_md=__doc__,
):

    @task
    def create_index() -> str:
        """Create the index with explicit mappings (keyword fields aggregate, text fields are searched)."""
        from zonda_elasticsearch.hooks import ElasticsearchHook

        hook = ElasticsearchHook()
        hook.create_index(INDEX, mappings=MAPPINGS, exist_ok=True)
        return INDEX

    index_books = ElasticsearchIndexOperator(
        task_id="index_books", index=INDEX, documents=BOOKS, id_field="isbn", refresh=True
    )

    search_python = ElasticsearchSearchOperator(
        task_id="search_python_books",
        index=INDEX,
        query={"match": {"title": "python"}},
        sort=[{"year": "desc"}, {"isbn": "asc"}],
        source=["title", "author", "year"],
    )

    per_genre = ElasticsearchSearchOperator(
        task_id="books_per_genre",
        index=INDEX,
        size=0,
        aggs={
            "genres": {"terms": {"field": "genre"}, "aggs": {"avg_pages": {"avg": {"field": "pages"}}}},
            "since_2020": {"filter": {"range": {"year": {"gte": 2020}}}},
        },
    )

    @task
    def summarize(found: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
        """Print what the search and the aggregations found, and return it as this task's XCom."""
        titles = [f"{hit['_source']['title']} ({hit['_source']['year']})" for hit in found["hits"]]
        genres = {
            bucket["key"]: {"books": bucket["doc_count"], "avg_pages": round(bucket["avg_pages"]["value"])}
            for bucket in stats["aggregations"]["genres"]["buckets"]
        }
        summary = {
            "books": stats["total"],
            "python_books": titles,
            "genres": genres,
            "published_since_2020": stats["aggregations"]["since_2020"]["doc_count"],
        }
        print(f"{summary['books']} books indexed in {INDEX}")
        print(f"matching 'python', newest first: {', '.join(titles)}")
        for genre, figures in genres.items():
            print(f"  {genre:<12} {figures['books']} books, {figures['avg_pages']} pages on average")
        print(f"published since 2020: {summary['published_since_2020']}")
        return summary

    create_index() >> index_books >> [search_python, per_genre]
    summarize(search_python.output, per_genre.output)
