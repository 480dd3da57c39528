"""The task instance page in Chromium: switching between the tries' logs (a try without a log file says "no log
yet", with no console error and no server path), marking success and failed through the preview, and the page's
state, try count and new try tabs following changes made elsewhere, live, without a reload.

The run is ``task_views_seed``'s: b has had two tries; only the second one wrote a log file.
"""

from __future__ import annotations

from typing import Any

from task_views_seed import RUN_ID, seed_gantt_run
from test_browser_task_views import states, write_log

from zonda.operations.task_instances import Selection, clear_task_instances, mark_task_instances

TASK_PAGE = f"/dags/gantt/runs/{RUN_ID}/tasks/b"


def open_task_page(site: Any, role: str, log_line: str) -> Any:
    """The seeded run, b's second try logging ``log_line``, and b's page as ``role`` once that line shows."""
    seed_gantt_run(site.engine)
    write_log(site, "b", 2, [log_line])
    page = site.logged_in_page(role)
    page.goto(TASK_PAGE)
    page.locator(".log-line", has_text=log_line).wait_for()
    return page


def test_try_tabs_switch_logs_and_a_try_without_a_log_says_so(site) -> None:
    page = open_task_page(site, "Viewer", "second try's line")
    tabs = page.get_by_role("tab")
    assert tabs.all_inner_texts() == ["Try 1", "Try 2"]
    assert page.get_by_role("tab", name="Try 2").get_attribute("aria-selected") == "true"
    source = page.locator(".log-source").inner_text()
    assert source.startswith("local file ") and str(site.web.settings.log_folder) not in source

    page.get_by_role("tab", name="Try 1").click()
    page.locator(".log-hits", has_text="No log yet for try 1.").wait_for()
    assert page.get_by_role("tab", name="Try 1").get_attribute("aria-selected") == "true"
    assert page.locator(".log-line").count() == 0
    assert page.locator(".log-download").is_hidden()
    assert str(site.web.settings.log_folder) not in page.content()

    page.get_by_role("tab", name="Try 2").click()
    page.locator(".log-line", has_text="second try's line").wait_for()
    assert page.locator(".log-download").is_visible()
    assert page.console_errors == []


def confirm(page: Any, button: str, expected_summary: str) -> None:
    page.get_by_role("button", name=button).click()
    page.locator(".preview-summary", has_text=expected_summary).wait_for()
    page.get_by_role("button", name="Confirm").click()
    page.locator(".preview-summary", has_text="Done: 1 changed.").wait_for()


def test_mark_failed_then_success_through_the_preview(site) -> None:
    page = open_task_page(site, "User", "b ran")
    badge = page.locator("h1 .ti-state")
    assert badge.inner_text() == "success"

    confirm(page, "Mark failed…", "1 task instance")
    badge.and_(page.locator("[data-state=failed]")).wait_for()  # the page reloads with the new state
    assert states(site)["b"] == "failed" and states(site)["c"] == "success"  # no downstream asked for

    confirm(page, "Mark success…", "1 task instance")
    badge.and_(page.locator("[data-state=success]")).wait_for()
    assert states(site)["b"] == "success"
    assert page.console_errors == []


def test_state_and_new_tries_arrive_live_without_a_reload(site) -> None:
    page = open_task_page(site, "Viewer", "b ran")
    page.evaluate("window.__same_page = true")
    selection = Selection("gantt", task_ids=["b"], run_ids=[RUN_ID])

    mark_task_instances(site.engine, selection, "failed")  # as `zonda tasks mark` would, from elsewhere
    page.locator("h1 .ti-state[data-state=failed]", has_text="failed").wait_for()

    clear_task_instances(site.engine, selection)
    page.locator("h1 .ti-state[data-state=none]", has_text="none").wait_for()
    assert page.evaluate("window.__same_page") is True
    assert page.get_by_role("tab").count() == 2
    assert page.console_errors == []
