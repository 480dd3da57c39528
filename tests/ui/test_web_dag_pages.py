"""The DAGs page (filters, recent runs, load-error banners) and one DAG's tabs (grid, graph, code, details) with
the JSON the grid and graph scripts draw: shapes, paging, folding data, mapped counts, and data from DAG files
shown as text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dag_fixtures import add_runs, grouped_dag, store_dag, wide_dag

from zonda.metastore import tables as t

SQLITE_ONLY = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
"""For tests whose subject does not depend on the database: SQLite only (the others run on PostgreSQL too)."""

INJECTIONS = ('<script>alert("x")</script>', '<img src=x onerror="alert(1)">')


def _insert_dag(engine: Any, dag_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        row = {"dag_id": dag_id, "is_paused": False, "is_active": True, "fileloc": "/x.py", **values}
        conn.execute(t.dag.insert().values(**row))


def _dag_ids_on(page: str) -> list[str]:
    import re

    return re.findall(r'class="dag-id" href="/dags/[^"]*">([^<]*)</a>', page)


# --- the DAGs page ------------------------------------------------------------------------------------------------


@pytest.mark.database_dependent
def test_the_dags_page_filters_by_search_tag_owner_and_paused(web) -> None:
    _insert_dag(web.engine, "sales_daily", tags='["sales", "daily"]', owners="alice, bob")
    _insert_dag(web.engine, "sales_hourly", tags='["sales"]', owners="bob", is_paused=True)
    _insert_dag(web.engine, "marketing", tags='["daily"]', owners="carol")
    client = web.logged_in("Viewer")
    assert _dag_ids_on(client.get("/dags").text) == ["marketing", "sales_daily", "sales_hourly"]
    assert _dag_ids_on(client.get("/dags?search=SALES").text) == ["sales_daily", "sales_hourly"]
    assert _dag_ids_on(client.get("/dags?tag=daily").text) == ["marketing", "sales_daily"]
    assert _dag_ids_on(client.get("/dags?tag=daily&tag=sales").text) == ["sales_daily"]
    assert _dag_ids_on(client.get("/dags?owner=bob").text) == ["sales_daily", "sales_hourly"]
    assert _dag_ids_on(client.get("/dags?paused=true").text) == ["sales_hourly"]
    assert _dag_ids_on(client.get("/dags?paused=false&search=sales").text) == ["sales_daily"]
    page = client.get("/dags?search=nothing-like-this").text
    assert _dag_ids_on(page) == [] and "No DAG matches these filters" in page and "0 of 3 DAGs" in page
    page = client.get("/dags").text  # the filter choices come from every DAG
    for choice in ('<option value="sales"', '<option value="daily"', '<option value="alice"', '<option value="carol"'):
        assert choice in page


def test_the_dags_page_pages_through_many_dags_keeping_the_filters(web) -> None:
    with web.engine.begin() as conn:
        conn.execute(
            t.dag.insert(),
            [
                {
                    "dag_id": f"dag_{n:04d}",
                    "is_paused": False,
                    "is_active": True,
                    "fileloc": "/x.py",
                    "tags": '["even"]' if n % 2 == 0 else '["odd"]',
                }
                for n in range(250)
            ],
        )
    client = web.logged_in("Viewer")
    first = client.get("/dags").text
    assert _dag_ids_on(first) == [f"dag_{n:04d}" for n in range(100)]
    assert "1&ndash;100 of 250 matching, 250 DAGs" in first and "Page 1 of 3" in first
    assert 'rel="next" href="/dags?page=2"' in first and 'rel="prev"' not in first
    last = client.get("/dags?page=3").text
    assert _dag_ids_on(last) == [f"dag_{n:04d}" for n in range(200, 250)] and 'rel="next"' not in last
    # a page past the last shows the last; the filters stay in the links
    assert _dag_ids_on(client.get("/dags?page=99").text) == _dag_ids_on(last)
    odd = client.get("/dags?tag=odd&page=2").text
    assert _dag_ids_on(odd) == [f"dag_{n:04d}" for n in range(201, 250, 2)]
    assert 'rel="prev" href="/dags?tag=odd&amp;page=1"' in odd and "101&ndash;125 of 125 matching" in odd
    bad = client.get("/dags?page=two")
    assert bad.status_code == 400 and "page must be a whole number" in bad.text


@pytest.mark.database_dependent
def test_the_dags_page_shows_the_newest_runs_states_as_dots(web) -> None:
    store_dag(web.store, wide_dag("with_runs", 1))
    add_runs(web.engine, "with_runs", 7)
    with web.engine.begin() as conn:
        conn.execute(t.dag_run.update().where(t.dag_run.c.run_id == "scheduled__2025-01-07").values(state="failed"))
    page = web.logged_in("Viewer").get("/dags").text
    dots = page.split('class="recent">', 1)[1].split("</td>", 1)[0]
    assert dots.count('class="state-dot"') == 5  # the five newest runs, newest first
    assert dots.index('data-state="failed"') < dots.index('data-state="success"')


def test_import_and_plugin_errors_show_as_banners_linking_to_masked_tracebacks(
    make_web_app, zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zonda.masking import get_masker

    get_masker().add("hunter2-secret")
    (zonda_home / "plugins").mkdir(exist_ok=True)
    (zonda_home / "plugins" / "broken_plugin.py").write_text(
        "PASSWORD = 'hunter2-secret'\nraise RuntimeError('cannot start with ' + PASSWORD)\n"
    )
    web = make_web_app()
    with web.engine.begin() as conn:
        conn.execute(
            t.import_error.insert().values(
                filename="/dags/<b>bad</b>.py", stacktrace="Traceback: password hunter2-secret was wrong"
            )
        )
    client = web.logged_in("Viewer")
    page = client.get("/dags").text
    assert "1 DAG file failed to import" in page and "&lt;b&gt;bad&lt;/b&gt;.py" in page
    assert 'href="/import-errors#import-error-' in page
    assert "1 plugin failed to load" in page and 'href="/plugins#plugin-error-broken_plugin">broken_plugin</a>' in page
    errors = client.get("/import-errors").text
    assert "password *** was wrong" in errors and "hunter2-secret" not in errors and "<b>bad" not in errors
    plugins = client.get("/plugins").text  # the banner's link: the traceback beside the plugins that loaded
    assert (
        'id="plugin-error-broken_plugin"' in plugins
        and "RuntimeError" in plugins
        and "cannot start with ***" in plugins
        and "hunter2-secret" not in plugins
    )


# --- the grid -------------------------------------------------------------------------------------------------------


@pytest.mark.database_dependent
def test_the_grid_json_has_the_tasks_once_and_a_letter_per_task_per_run(web) -> None:
    dag = wide_dag("grid_dag", 4)
    store_dag(web.store, dag)
    states = {"task_0000": "success", "task_0001": "failed", "task_0002": None}
    add_runs(web.engine, "grid_dag", 2, task_ids=list(states), state_of=lambda run, task: (states[task],))
    body = web.logged_in("Viewer").get("/dags/grid_dag/grid.json").json
    assert body["tasks"] == [["task_0000", -1, 0], ["task_0001", -1, 0], ["task_0002", -1, 0], ["task_0003", -1, 0]]
    assert body["groups"] == []
    assert [run["run_id"] for run in body["runs"]] == ["scheduled__2025-01-02", "scheduled__2025-01-01"]
    assert body["runs"][0]["states"] == "sf-."  # task_0003 has no instance in these runs
    assert body["codes"]["s"] == "success" and body["codes"]["f"] == "failed" and body["codes"]["-"] == "none"
    assert body["next_before"] is None


@pytest.mark.database_dependent
def test_the_grid_pages_through_thousands_of_runs_with_a_cursor(web) -> None:
    store_dag(web.store, wide_dag("many_runs", 1))
    run_ids = add_runs(web.engine, "many_runs", 2000, task_ids=["task_0000"])
    client = web.logged_in("Viewer")
    seen: list[str] = []
    url = "/dags/many_runs/grid.json?runs=100"
    for _ in range(25):  # 20 pages of 100, and a margin
        body = client.get(url).json
        seen += [run["run_id"] for run in body["runs"]]
        if body["next_before"] is None:
            break
        url = f"/dags/many_runs/grid.json?runs=100&before={body['next_before']}"
    assert seen == list(reversed(run_ids))


def test_bad_grid_cursors_are_clear_400s(web) -> None:
    store_dag(web.store, wide_dag("cursor_dag", 1))
    client = web.logged_in("Viewer")
    response = client.get("/dags/cursor_dag/grid.json?before=abc")
    assert response.status_code == 400 and "before must be a run's numeric id" in response.json["detail"]
    response = client.get("/dags/cursor_dag/grid.json?runs=0")
    assert response.status_code == 400 and "runs must be a number of runs from 1 to 100" in response.json["detail"]
    assert client.get("/dags/cursor_dag?before=x").status_code == 400
    response = client.get("/dags/nope/grid.json")
    assert response.status_code == 404 and "no DAG 'nope'" in response.json["detail"]


def test_task_groups_arrive_in_tree_order_for_folding(web) -> None:
    from zonda import DAG, TaskGroup
    from zonda.operators import EmptyOperator

    with DAG("grouped", schedule=None, start_date=wide_dag("x", 0).start_date) as dag:
        first = EmptyOperator(task_id="first")
        with TaskGroup("outer") as outer:
            a = EmptyOperator(task_id="a")
            with TaskGroup("inner"):
                b = EmptyOperator(task_id="b")
        last = EmptyOperator(task_id="last")
        later = EmptyOperator(task_id="c", task_group=outer)
        first >> a >> b >> last >> later
    store_dag(web.store, dag)
    body = web.logged_in("Viewer").get("/dags/grouped/grid.json").json
    groups = [name for name, _parent in body["groups"]]
    assert groups == ["outer", "outer.inner"] and body["groups"][1][1] == groups.index("outer")
    ids = [task[0] for task in body["tasks"]]
    # outer's tasks stay together (c right after outer's others, not after "last"), inner nested inside
    assert ids == ["first", "outer.a", "outer.inner.b", "outer.c", "last"]
    assert [task[1] for task in body["tasks"]] == [-1, 0, 1, 0, -1]


@pytest.mark.database_dependent
def test_a_mapped_task_is_one_row_with_its_count_and_state_summary(web) -> None:
    store_dag(web.store, wide_dag("mapped", 2, mapped_every=2))
    mapped_states = ("success", "failed", "success", "running")
    add_runs(
        web.engine,
        "mapped",
        1,
        task_ids=["task_0000", "task_0001"],
        state_of=lambda run, task: mapped_states if task == "task_0001" else ("success",),
    )
    body = web.logged_in("Viewer").get("/dags/mapped/grid.json").json
    assert body["tasks"] == [["task_0000", -1, 0], ["task_0001", -1, 1]]
    run = body["runs"][0]
    assert run["states"] == "sf"  # the most urgent state of the instances
    assert run["mapped"] == {"1": {"success": 2, "failed": 1, "running": 1}}


def test_a_grid_of_1000_tasks_by_25_runs_stays_under_100_kb(web) -> None:
    dag = wide_dag("big", 1000, group_size=50, mapped_every=100)
    store_dag(web.store, dag)
    add_runs(web.engine, "big", 25, task_ids=[task.task_id for task in dag.tasks])
    response = web.logged_in("Viewer").get("/dags/big/grid.json")
    assert response.status_code == 200 and len(response.data) <= 100 * 1024
    assert len(response.json["runs"]) == 25 and all(len(run["states"]) == 1000 for run in response.json["runs"])


@SQLITE_ONLY
def test_the_grid_page_passes_its_data_by_attributes_and_loads_scripts_from_files(web) -> None:
    store_dag(web.store, wide_dag("page_dag", 1))
    page = web.logged_in("Viewer").get("/dags/page_dag?before=12").text
    assert 'data-dag-id="page_dag"' in page and 'data-before="12"' in page
    assert '<script src="/static/js/grid.js" defer></script>' in page
    assert "<script>" not in page and " on" + "click=" not in page
    for tab in ('href="/dags/page_dag"', 'href="/dags/page_dag/graph"', 'href="/dags/page_dag/code"'):
        assert tab in page
    assert web.client().get("/static/js/grid.js").status_code == 200


# --- the graph ------------------------------------------------------------------------------------------------------


@pytest.mark.database_dependent
def test_the_graph_json_has_edges_groups_and_the_latest_runs_states(web) -> None:
    store_dag(web.store, grouped_dag("graph_dag"))
    client = web.logged_in("Viewer")
    body = client.get("/dags/graph_dag/graph.json").json
    ids = [task[0] for task in body["tasks"]]
    assert ids == ["start", "work.one", "work.two", "end"] and body["latest_run"] is None
    edges = sorted((ids[a], ids[b]) for a, b in body["edges"])
    assert edges == [("start", "work.one"), ("start", "work.two"), ("work.one", "end"), ("work.two", "end")]
    assert body["groups"] == [["work", -1]] and [task[1] for task in body["tasks"]] == [-1, 0, 0, -1]
    assert body["tasks"][0][3] == "EmptyOperator"
    add_runs(web.engine, "graph_dag", 2, task_ids=ids, state_of=lambda run, task: ("failed" if run else "success",))
    latest = client.get("/dags/graph_dag/graph.json").json["latest_run"]
    assert latest == {"run_id": "scheduled__2025-01-02", "state": "success", "states": "ffff"}
    assert "/static/js/graph.js" in client.get("/dags/graph_dag/graph").text


# --- code and details -----------------------------------------------------------------------------------------------


def test_the_code_tab_shows_a_file_of_the_dags_folder_only(web, zonda_home: Path) -> None:
    dags_folder = web.settings.dags_folder
    dags_folder.mkdir(parents=True, exist_ok=True)
    (dags_folder / "shown.py").write_text("# the DAG file\nx = '<script>alert(1)</script>'\n")
    outside = zonda_home / "secret.py"
    outside.write_text("PASSWORD = 'not for the web'\n")
    _insert_dag(web.engine, "inside", fileloc=str(dags_folder / "shown.py"))
    _insert_dag(web.engine, "outside", fileloc=str(outside))
    _insert_dag(web.engine, "sneaky", fileloc=str(dags_folder / ".." / "secret.py"))
    _insert_dag(web.engine, "gone", fileloc=str(dags_folder / "gone.py"))
    client = web.logged_in("Viewer")
    page = client.get("/dags/inside/code").text
    assert "# the DAG file" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    for dag_id in ("outside", "sneaky"):
        page = client.get(f"/dags/{dag_id}/code").text
        assert "not for the web" not in page and "outside the DAGs folder" in page
    assert "not a plain file in the DAGs folder" in client.get("/dags/gone/code").text
    assert client.get("/dags/nope/code").status_code == 404


def test_the_details_tab_shows_schedule_owners_tags_and_params_with_their_schema(web) -> None:
    from zonda import Param

    params = {"limit": Param(3, type="integer", minimum=1, description="How many rows")}
    dag = wide_dag("detailed", 1, tags=["etl"], params=params, doc_md="# Nightly load\n\nSee *the wiki*.")
    store_dag(web.store, dag)
    page = web.logged_in("Viewer").get("/dags/detailed/details").text
    assert "<h1>Nightly load</h1>" in page and "<em>the wiki</em>" in page
    assert ">limit<" in page and "How many rows" in page and "&#34;minimum&#34;: 1" in page
    assert ">etl</a>" in page and "zonda" in page  # the owner of tasks without one


@pytest.mark.parametrize("payload", INJECTIONS)
def test_markup_from_dag_files_shows_as_text_on_every_tab(web, payload: str) -> None:
    from zonda import DAG, Param
    from zonda.operators import EmptyOperator

    doc = f"{payload}\n\n[click](javascript:alert(1)) [ok](https://example.org)"
    with DAG(
        "inject",
        schedule=None,
        start_date=wide_dag("x", 0).start_date,
        doc_md=doc,
        description=payload,
        tags=[payload],
        params={"p": Param(payload, type="string", description=payload)},
    ) as dag:
        EmptyOperator(task_id="t1", owner=payload)
    store_dag(web.store, dag)
    client = web.logged_in("Viewer")
    for path in ("/dags", "/dags/inject", "/dags/inject/graph", "/dags/inject/code", "/dags/inject/details"):
        page = client.get(path).text
        assert payload not in page, path
        assert "<script>alert" not in page and "<img src=x" not in page, path
    details = client.get("/dags/inject/details").text
    assert 'href="javascript:' not in details and '<a href="https://example.org">ok</a>' in details
    assert "&lt;script&gt;" in details or "&lt;img src=x" in details
    body = client.get("/dags/inject/grid.json")
    assert body.mimetype == "application/json" and json.loads(body.data)["tasks"][0][0] == "t1"


def test_a_task_id_cannot_carry_markup_and_the_grid_sends_ids_as_json_data(web) -> None:
    """Task ids are restricted to safe characters when DAGs are defined; what reaches the grid is JSON only, and
    grid.js inserts it with textContent (checked by reading the script: no innerHTML anywhere)."""
    from zonda.exceptions import DagDefinitionError
    from zonda.operators import EmptyOperator

    with pytest.raises(DagDefinitionError):
        EmptyOperator(task_id='<img src=x onerror="alert(1)">', dag=wide_dag("x", 0))
    static = Path(__import__("zonda.web", fromlist=["x"]).__file__).parent / "static" / "js"
    for script in ("grid.js", "graph.js", "graph_layout_worker.js"):
        text = (static / script).read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "eval(" not in text, script
