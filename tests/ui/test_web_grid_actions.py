"""The grid page carries the bulk menu (Clear, Mark success, Mark failed with their options and a CSRF token)
only for roles that may clear or mark; a Viewer gets the grid without it. The menu's requests are the clear/mark
endpoints' (tests/ui/test_web_task_views.py); here, the selections the grid sends for a run, a task across runs and
a group in a run preview what they should."""

from __future__ import annotations

import pytest
from dag_fixtures import add_runs, grouped_dag, store_dag
from werkzeug.datastructures import MultiDict

GRID_IDS = ["start", "work.one", "work.two", "end"]


def _grid_dag(web) -> list[str]:
    store_dag(web.store, grouped_dag("menu_dag"))
    return add_runs(web.engine, "menu_dag", 3, task_ids=GRID_IDS)


def test_the_bulk_menu_is_on_the_grid_for_users_and_not_for_viewers(web) -> None:
    _grid_dag(web)
    viewer = web.logged_in("Viewer").get("/dags/menu_dag").text
    assert 'id="grid-actions"' not in viewer and "grid_actions.js" not in viewer and 'data-actions="on"' not in viewer
    for role in ("User", "Op", "Admin"):
        client = web.logged_in(role)
        page = client.get("/dags/menu_dag").text
        assert 'data-actions="on"' in page and '<dialog id="grid-actions"' in page, role
        assert '<script src="/static/js/grid_actions.js" defer>' in page
        assert 'data-action="clear"' in page and 'data-state="success"' in page and 'data-state="failed"' in page
        for flag in ("upstream", "downstream", "past", "future", "only_failed"):
            assert f'name="{flag}"' in page
        assert f'name="csrf_token" value="{web.token(client)}"' in page.split('<dialog id="grid-actions"')[1]


def _preview(client, token: str, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    answer = client.post(
        "/dags/menu_dag/task_instances/mark",
        data=MultiDict([("csrf_token", token), ("state", "failed"), *fields]),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json["dry_run"] is True
    return sorted((ti["run_id"], ti["task_id"]) for ti in answer.json["instances"])


@pytest.mark.database_dependent
def test_the_grids_selections_preview_a_run_a_task_across_runs_and_a_group(web) -> None:
    runs = _grid_dag(web)
    client = web.logged_in("User")
    token = web.token(client)
    assert _preview(client, token, [("run_id", runs[1])]) == sorted((runs[1], task) for task in GRID_IDS)
    across = [("task_id", "end")] + [("run_id", run) for run in runs[1:]]
    assert _preview(client, token, across) == [(runs[1], "end"), (runs[2], "end")]
    group = [("task_group", "work"), ("run_id", runs[0])]
    assert _preview(client, token, group) == [(runs[0], "work.one"), (runs[0], "work.two")]
    one = [("task_id", "work.two"), ("run_id", runs[2]), ("map_index", "-1"), ("downstream", "true")]
    assert _preview(client, token, one) == [(runs[2], "end"), (runs[2], "work.two")]
