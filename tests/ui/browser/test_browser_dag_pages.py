"""One DAG's pages in Chromium: the grid draws only the rows in view of a 1,000 x 25 grid, folds task groups, and
its cells open the task instance; the graph is laid out by dagre in a worker; markup from a DAG file never runs."""

from __future__ import annotations

from typing import Any

import pytest
from dag_fixtures import add_runs, grouped_dag, store_dag, wide_dag
from screenshots import save_screenshot

PAYLOAD = '<img src=x onerror="window.__pwned=1">'


def _some_state(run: int, task_id: str) -> str:
    """Mostly green, with the odd failure, retry and skip: a grid that shows its colours."""
    turn = (run * 7 + int(task_id[-4:])) % 23
    return {0: "failed", 1: "upstream_failed", 2: "up_for_retry", 3: "skipped"}.get(turn, "success")


def _script_errors(page: Any) -> list[str]:
    """Console errors other than a missing /static/js/live.js (the live-updates helper's file, merged later)."""
    return [error for error in page.console_errors if "404" not in error and "/static/js/live.js" not in error]


def test_the_grid_of_1000_tasks_keeps_only_visible_rows_and_folds_groups(site) -> None:
    dag = wide_dag("big_grid", 1000, group_size=50, mapped_every=10)
    store_dag(site.web.store, dag)
    mapped = {task.task_id for task in dag.tasks if getattr(task, "is_mapped", False)}
    add_runs(
        site.engine,
        "big_grid",
        25,
        task_ids=[task.task_id for task in dag.tasks],
        state_of=lambda run, task: ("success", "failed") if task in mapped else (_some_state(run, task),),
    )
    page = site.logged_in_page("Viewer")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/dags/big_grid")
    page.wait_for_selector(".grid-row a.cell")
    assert page.locator(".grid-head a.run").count() == 25
    drawn = page.locator(".grid-row").count()
    assert 0 < drawn < 120, drawn  # 1,020 rows (1,000 tasks, 20 groups), only those in view (+ a margin) exist

    cell = page.locator('a.cell[data-task-id="group_0.task_0001"]').last
    assert cell.get_attribute("data-dag-id") == "big_grid"
    assert cell.get_attribute("data-map-index") == "-1"
    assert cell.get_attribute("data-run-id") == "scheduled__2025-01-25"  # newest on the right
    assert (
        cell.get_attribute("href") == "/dags/big_grid/runs/scheduled__2025-01-25/tasks/group_0.task_0001?map_index=-1"
    )
    mapped_cell = page.locator('a.cell[data-task-id="group_0.task_0009"]').last  # mapped: 2 instances
    assert mapped_cell.get_attribute("data-map-count") == "2" and "st-failed" in mapped_cell.get_attribute("class")

    page.locator(".grid-body").evaluate("body => { body.scrollTop = body.scrollHeight; }")
    page.wait_for_selector('a.cell[data-task-id="group_19.task_0999"]')
    assert page.locator('a.cell[data-task-id="group_0.task_0001"]').count() == 0  # scrolled out: removed

    page.locator(".grid-body").evaluate("body => { body.scrollTop = 0; }")
    page.get_by_role("button", name="Fold group_0").click()
    page.wait_for_selector('button[aria-label="Unfold group_0"]')
    assert page.locator('a.cell[data-task-id="group_0.task_0001"]').count() == 0
    assert page.locator('.cell.group[data-group-id="group_0"]').count() == 25
    page.get_by_role("button", name="Unfold group_0").click()
    page.wait_for_selector('a.cell[data-task-id="group_0.task_0001"]')
    assert _script_errors(page) == []


def test_a_grid_cell_opens_its_task_instance_and_older_runs_page(site) -> None:
    store_dag(site.web.store, wide_dag("paged", 2))
    add_runs(site.engine, "paged", 30, task_ids=["task_0000", "task_0001"])
    page = site.logged_in_page("Viewer")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "grid.json" in request.url else None)
    page.goto("/dags/paged")
    page.wait_for_selector(".grid-head a.run")
    assert len(asked) == 1, asked  # the preload's answer is the one grid.js uses
    page.get_by_role("link", name="Older runs").click()
    page.wait_for_url("**/dags/paged?before=*")
    page.wait_for_selector(".grid-head a.run")
    assert page.locator(".grid-head a.run").count() == 5  # 30 runs: 25, then the 5 oldest
    assert page.locator(".grid-head a.run").first.get_attribute("data-run-id") == "scheduled__2025-01-01"
    page.locator('a.cell[data-task-id="task_0001"]').first.click()
    page.wait_for_url("**/dags/paged/runs/scheduled__2025-01-01/tasks/task_0001?map_index=-1")


def test_the_graph_is_laid_out_with_groups_and_coloured_by_the_latest_run(site) -> None:
    dag = grouped_dag("graph_dag")
    store_dag(site.web.store, dag)
    ids = ["start", "work.one", "work.two", "end"]
    add_runs(
        site.engine,
        "graph_dag",
        1,
        task_ids=ids,
        state_of=lambda run, task: ("failed" if task == "end" else "success",),
    )
    page = site.logged_in_page("Viewer")
    page.goto("/dags/graph_dag/graph")
    page.wait_for_selector(".graph-canvas svg a.node")
    save_screenshot(page, "graph.png")
    assert page.locator(".graph-canvas a.node").count() == 4
    assert page.locator(".graph-canvas .cluster").count() == 1
    assert page.locator(".graph-canvas path.edge").count() == 4
    end = page.locator('.graph-canvas a.node[data-task-id="end"]')
    assert "st-failed" in end.get_attribute("class")
    xs = {task: page.locator(f'.graph-canvas a.node[data-task-id="{task}"] rect').get_attribute("x") for task in ids}
    assert float(xs["start"]) < float(xs["work.one"]) < float(xs["end"])  # left to right, in dependency order
    end.click()
    page.wait_for_url("**/dags/graph_dag/runs/scheduled__2025-01-01/tasks/end?map_index=-1")


@pytest.mark.parametrize("path", ["", "/graph", "/details", "/code"])
def test_markup_in_a_dag_never_runs_on_its_pages(site, path: str) -> None:
    from zonda import DAG, Param
    from zonda.operators import EmptyOperator

    with DAG(
        "inject",
        schedule=None,
        start_date=wide_dag("x", 0).start_date,
        doc_md=f"# Title\n\n{PAYLOAD}\n\n[link](javascript:window.__pwned=2)",
        description=PAYLOAD,
        tags=[PAYLOAD],
        params={"p": Param(PAYLOAD, type="string", description=PAYLOAD)},
    ) as dag:
        EmptyOperator(task_id="t1", owner=PAYLOAD)
    store_dag(site.web.store, dag)
    add_runs(site.engine, "inject", 1, task_ids=["t1"])
    page = site.logged_in_page("Viewer")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/dags/inject" + path)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.locator("img[src=x]").count() == 0
    if path == "/details":
        assert page.get_by_text(PAYLOAD).first.is_visible()
        assert page.locator('a[href^="javascript:"]').count() == 0
    page.goto("/dags")
    assert page.evaluate("window.__pwned") is None and page.locator("img[src=x]").count() == 0
    assert _script_errors(page) == []
