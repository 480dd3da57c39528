"""The grid's bulk menu in Chromium, on stored runs (no scheduler): it opens from the keyboard on a run and from a
right click on a cell and the "⋯" buttons of a task and a group, previews what would change, applies it after
Confirm and redraws the grid; a Viewer has none of it. The runs of a real scheduler are in
test_browser_standalone_flows.py."""

from __future__ import annotations

from typing import Any

import pytest
from dag_fixtures import add_runs, grouped_dag, store_dag
from test_browser_accessibility import serious_violations

TASKS = ["start", "work.one", "work.two", "end"]


def _grid(site: Any, role: str, *, color_scheme: str = "light") -> tuple[Any, list[str]]:
    store_dag(site.web.store, grouped_dag("menu_dag"))
    runs = add_runs(site.engine, "menu_dag", 3, task_ids=TASKS)
    page = site.logged_in_page(role, color_scheme=color_scheme)
    page.goto("/dags/menu_dag")
    page.wait_for_selector(".grid-row a.cell")
    return page, runs


def _preview_lines(page: Any) -> list[str]:
    return page.locator("#grid-actions .preview-list li").all_inner_texts()


def test_a_run_is_marked_failed_from_the_keyboard_after_its_preview(site) -> None:
    page, runs = _grid(site, "User")
    dialog = page.get_by_role("dialog")
    page.locator(f'.grid-head a.run[data-run-id="{runs[1]}"]').focus()
    page.keyboard.press("Shift+F10")
    assert dialog.locator("h2").inner_text() == f"Every task of run {runs[1]}"
    dialog.get_by_role("button", name="Mark failed…").click()
    dialog.locator(".preview-summary", has_text="This will mark failed 4 task instance(s)").wait_for()
    assert sorted(line.split(" in ")[0] for line in _preview_lines(page)) == sorted(TASKS)
    assert page.locator(".grid-row a.cell.st-failed").count() == 0  # a preview changes nothing

    dialog.get_by_role("button", name="Confirm").click()
    dialog.locator(".preview-summary", has_text="Done: 4 changed.").wait_for()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    page.wait_for_selector(f'.grid-row a.cell.st-failed[data-run-id="{runs[1]}"][data-task-id="end"]')
    failed = page.locator(".grid-row a.cell.st-failed")
    assert {cell.get_attribute("data-run-id") for cell in failed.all()} == {runs[1]}
    assert page.console_errors == []


def test_a_cell_a_task_across_runs_and_a_group_open_the_menu_with_their_selection(site) -> None:
    page, runs = _grid(site, "Op")
    dialog = page.get_by_role("dialog")
    page.locator(f'a.cell[data-run-id="{runs[0]}"][data-task-id="work.one"]').click(button="right")
    assert dialog.locator("h2").inner_text() == f"Task work.one in run {runs[0]}"
    dialog.get_by_label("downstream").check()
    dialog.get_by_role("button", name="Clear…").click()
    dialog.locator(
        ".preview-summary", has_text="This will clear 2 task instance(s) and queue 1 run(s) again"
    ).wait_for()
    assert _preview_lines(page) == [f"end in {runs[0]} (success)", f"work.one in {runs[0]} (success)"]
    dialog.get_by_role("button", name="Close").click()

    page.get_by_role("button", name="Clear or mark end in the runs shown").click()
    assert dialog.locator("h2").inner_text() == "Task end in the 3 runs shown"
    assert not dialog.get_by_label("downstream").is_checked()  # each opening starts afresh
    dialog.get_by_role("button", name="Mark success…").click()
    dialog.locator(".preview-summary", has_text="Nothing to mark success.").wait_for()
    assert not dialog.get_by_role("button", name="Confirm").is_visible()
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Clear or mark group work in the runs shown").click()
    dialog.get_by_role("button", name="Mark failed…").click()
    dialog.locator(".preview-summary", has_text="This will mark failed 6 task instance(s)").wait_for()
    assert {line.split(" in ")[0] for line in _preview_lines(page)} == {"work.one", "work.two"}
    dialog.get_by_role("button", name="Cancel").click()
    assert not dialog.locator(".preview").is_visible()
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Fold work").click()
    page.locator(f'.cell.group[data-group-id="work"][data-run-id="{runs[2]}"]').click(button="right")
    assert dialog.locator("h2").inner_text() == f"Group work in run {runs[2]}"
    assert page.console_errors == []


def test_a_viewer_gets_no_menu_and_a_right_click_stays_the_browsers(site) -> None:
    page, runs = _grid(site, "Viewer")
    assert page.locator("button.row-menu").count() == 0 and page.locator("dialog").count() == 0
    page.locator(f'a.cell[data-run-id="{runs[0]}"][data-task-id="start"]').click(button="right")
    assert not page.evaluate("document.querySelector('dialog[open]')")
    assert page.console_errors == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_grid_with_its_menu_open_has_no_serious_axe_violations(site, theme) -> None:
    page, _ = _grid(site, "User", color_scheme=theme)
    assert serious_violations(page) == []
    page.get_by_role("button", name="Clear or mark group work in the runs shown").click()
    page.get_by_role("dialog").get_by_role("button", name="Clear…").click()
    page.locator("#grid-actions .preview-list li").first.wait_for()
    assert serious_violations(page) == []
