"""Readable names in the web server and the API: ``dag_display_name``, ``task_display_name``, each mapped
instance's ``rendered_map_index`` (Airflow's API fields of the same names), and edge labels in the graph JSON.
Names that come from data are shown as text, escaped, never as markup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

INJECTION = '<script>alert("x")</script>'


def _run(web: Any) -> str:
    from zonda import DAG, Label, task
    from zonda.operators import EmptyOperator
    from zonda.runner.store import MetastoreRunStore
    from zonda.testing import run_dag

    @task
    def people() -> list[str]:
        return [INJECTION, "bob"]

    @task(map_index_template="hello {{ who }}", task_display_name="Greet someone")
    def greet(who: str) -> str:
        return who

    with DAG("names_web", schedule=None, start_date=datetime(2024, 1, 1), dag_display_name="Readable names") as dag:
        start = EmptyOperator(task_id="start")
        listed = people()
        start >> Label("then list") >> listed
        greet.expand(who=listed)
    MetastoreRunStore(web.store).sync_dag(dag)
    result = run_dag(dag, "2024-01-01", metastore=web.store, settings=web.settings)
    assert result.succeeded, result.states()
    return result.run.run_id


def test_the_api_gives_display_names_and_rendered_map_indexes(web: Any) -> None:
    run_id = _run(web)
    client = web.logged_in("Viewer")
    assert client.get("/api/v1/dags/names_web").json["dag_display_name"] == "Readable names"
    body = client.get(f"/api/v1/dags/names_web/dagRuns/{run_id}/taskInstances").json
    named = {
        (ti["task_id"], ti["map_index"]): (ti["rendered_map_index"], ti["task_display_name"])
        for ti in body["task_instances"]
    }
    assert named == {
        ("start", -1): (None, "start"),
        ("people", -1): (None, "people"),
        ("greet", 0): (f"hello {INJECTION}", "Greet someone"),
        ("greet", 1): ("hello bob", "Greet someone"),
    }
    one = client.get(f"/api/v1/dags/names_web/dagRuns/{run_id}/taskInstances/greet/1").json
    assert one["rendered_map_index"] == "hello bob"


def test_pages_show_the_names_as_text(web: Any) -> None:
    run_id = _run(web)
    client = web.logged_in("Viewer")
    dags_page = client.get("/dags").text
    assert "Readable names" in dags_page
    page = client.get(f"/dags/names_web/runs/{run_id}/tasks/greet?map_index=0").text
    assert "hello &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page and INJECTION not in page
    assert "Greet someone" in page
    assert "Readable names" in client.get("/dags/names_web/graph").text


def test_the_graph_json_labels_edges_drawn_through_a_label(web: Any) -> None:
    _run(web)
    body = web.logged_in("Viewer").get("/dags/names_web/graph.json").json
    ids = [task[0] for task in body["tasks"]]
    edges = {(ids[edge[0]], ids[edge[1]]): edge[2:] for edge in body["edges"]}
    assert edges == {("start", "people"): ["then list"], ("people", "greet"): []}
