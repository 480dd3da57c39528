"""The flows that need a real scheduler, on ``zonda standalone`` in Chromium: a failed task's log one click from its
run's Gantt view (bars and critical path drawn), and a clear with downstream that runs the tasks again.

The run page redraws on its own when the live stream (``window.zondaLive``) is there; without it the test reloads
the page, as a user would. ``ZONDA_SCREENSHOTS=1`` also saves the Gantt view with its critical path to
``docs/screenshots/gantt.png`` (the README's picture):
``ZONDA_SCREENSHOTS=1 .venv/bin/pytest tests/ui/browser/test_browser_standalone_flows.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from standalone_site import CHAIN_DAG, FAILING_DAG, FAILURE_LINE, RUN_TIMEOUT_SECONDS

SCREENSHOT = Path(__file__).resolve().parents[3] / "docs/screenshots/gantt.png"
CRITICAL_RED = "rgb(208, 2, 27)"
#: Reloads of the run page while waiting for the scheduler, when no live stream redraws it.
MAX_RELOADS = RUN_TIMEOUT_SECONDS


#: Records each run state the page shows (in ``window.__runStates``); a reload would lose the record.
WATCH_RUN_STATE = """() => {
  window.__runStates = [];
  const badge = document.querySelector(".run-summary .run-state");
  new MutationObserver(() => window.__runStates.push(badge.textContent))
    .observe(badge, { childList: true, characterData: true, subtree: true, attributes: true });
}"""


def run_page(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def open_gantt(page: Any, dag_id: str, run_id: str) -> None:
    page.goto(run_page(dag_id, run_id))
    page.locator("svg.gantt-svg").wait_for()


def bars(page: Any, task_id: str, selector: str = "") -> Any:
    return page.locator(f"a.gantt-row[href*='/tasks/{task_id}'] rect.bar{selector}")


def outlines(page: Any, task_id: str) -> set[str]:
    return {bar.evaluate("node => getComputedStyle(node).stroke") for bar in bars(page, task_id).all()}


def wait_on_gantt(page: Any, locator: Any) -> None:
    """Wait until ``locator`` is on the run page: redrawn live when the page has the live stream, else after
    reloads (one a second, bounded)."""
    if page.evaluate("Boolean(window.zondaLive)"):
        locator.first.wait_for(timeout=RUN_TIMEOUT_SECONDS * 1000)
        return
    for _ in range(MAX_RELOADS):
        if locator.count():
            return
        page.wait_for_timeout(1000)
        page.reload()
        page.locator("svg.gantt-svg").wait_for()
    raise AssertionError(f"{locator} never showed on the run page")


def gantt_of_a_finished_run(standalone: Any, site: Any, dag_id: str, state: str, critical: str) -> tuple[str, Any]:
    """Trigger ``dag_id``, wait for its run to end in ``state``, open its Gantt view in a logged-in page, check
    the critical path it names; (run id, page)."""
    run_id = standalone.trigger(dag_id)
    assert standalone.wait_for_run(dag_id, run_id) == state
    page = site.logged_in_page("Admin")
    open_gantt(page, dag_id, run_id)
    assert f"critical path: {critical}" in page.locator(".gantt-status").inner_text()
    return run_id, page


def test_a_failed_tasks_log_is_one_click_from_its_runs_gantt(standalone, standalone_site) -> None:
    _, page = gantt_of_a_finished_run(standalone, standalone_site, FAILING_DAG, "failed", "prepare → boom")
    assert bars(page, "prepare", "[data-kind='running']").count() == 1
    assert outlines(page, "prepare") == outlines(page, "boom") == {CRITICAL_RED}

    bars(page, "boom", "[data-kind='running']").click()
    page.wait_for_url("**/tasks/boom")
    assert page.locator("h1 .state").inner_text() == "failed"
    page.locator(".log-line", has_text=FAILURE_LINE).first.wait_for()
    assert page.console_errors == []


def test_clear_with_downstream_runs_the_tasks_again(standalone, standalone_site) -> None:
    run_id, gantt = gantt_of_a_finished_run(standalone, standalone_site, CHAIN_DAG, "success", "a → b → c")
    assert outlines(gantt, "b") == {CRITICAL_RED} and CRITICAL_RED not in outlines(gantt, "side")
    if os.environ.get("ZONDA_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        gantt.locator("main").screenshot(path=str(SCREENSHOT))
    live = gantt.evaluate("Boolean(window.zondaLive)")
    if live:
        gantt.evaluate(WATCH_RUN_STATE)

    task = standalone_site.logged_in_page("Admin")  # a second tab: the Gantt stays open beside it
    task.goto(f"{run_page(CHAIN_DAG, run_id)}/tasks/b")
    task.get_by_label("downstream").check()
    task.get_by_role("button", name="Clear…").click()
    task.locator(".preview-summary", has_text="This will clear 2 task instance(s)").wait_for()
    assert [item.split(" in ")[0] for item in task.locator(".preview-list li").all_inner_texts()] == ["b", "c"]
    task.get_by_role("button", name="Confirm").click()
    task.locator(".preview-summary", has_text="Done: 2 changed.").wait_for()

    wait_on_gantt(gantt, bars(gantt, "c", "[data-try='2'][data-kind='running']:not(.bar-live)"))
    wait_on_gantt(gantt, gantt.locator(".run-summary .run-state[data-state=success]"))
    assert bars(gantt, "b", "[data-try='2'][data-kind='running']").count() == 1
    assert bars(gantt, "a", "[data-try='2']").count() == 0  # upstream of the cleared task: left alone
    if live:  # the same document all along, its run state passing through the re-run
        seen = gantt.evaluate("window.__runStates")
        assert seen[-1] == "success" and {"queued", "running"} & set(seen), seen
    assert standalone.wait_for_run(CHAIN_DAG, run_id) == "success"
    assert standalone.task_states(CHAIN_DAG, run_id) == {
        "a": ("success", 1),
        "b": ("success", 2),
        "c": ("success", 2),
        "side": ("success", 1),
    }
    assert gantt.console_errors == [] and task.console_errors == []
