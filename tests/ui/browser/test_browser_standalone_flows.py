"""The flows that need a real scheduler, on ``zonda standalone`` in Chromium: a run triggered from the form whose
grid turns green live; a failed task's log one click from the grid and from its run's Gantt view (bars and
critical path drawn); a clear with downstream, from the task page and from the grid's bulk menu, that runs the
tasks again while the pages watch.

The run page redraws on its own when the live stream (``window.zondaLive``) is there; without it the test reloads
the page, as a user would. ``ZONDA_SCREENSHOTS=1`` also saves the Gantt view with its critical path to
``docs/screenshots/gantt.png`` and a grid of several runs with a folded group to ``docs/screenshots/grid.png``
(the README's pictures):
``ZONDA_SCREENSHOTS=1 .venv/bin/pytest tests/ui/browser/test_browser_standalone_flows.py``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from screenshots import save_screenshot
from standalone_site import CHAIN_DAG, FAILING_DAG, FAILURE_LINE, GRID_DAG, RUN_TIMEOUT_SECONDS

CRITICAL_RED = "rgb(179, 38, 30)"  # the light theme's --danger, which outlines the critical path
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


#: The chain's instances after b was cleared with downstream: b and c ran again, a and side did not.
RAN_AGAIN_FROM_B = {"a": ("success", 1), "b": ("success", 2), "c": ("success", 2), "side": ("success", 1)}


def clear_b_with_downstream(form: Any) -> None:
    """In ``form`` (the task page of b, or the grid's menu opened on b): tick downstream, Clear…, check the
    preview names b and c, Confirm."""
    form.get_by_label("downstream").check()
    form.get_by_role("button", name="Clear…").click()
    form.locator(".preview-summary", has_text="This will clear 2 task instance(s)").wait_for()
    assert [item.split(" in ")[0] for item in form.locator(".preview-list li").all_inner_texts()] == ["b", "c"]
    form.get_by_role("button", name="Confirm").click()
    form.locator(".preview-summary", has_text="Done: 2 changed.").wait_for()


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
    save_screenshot(gantt.locator("main"), "gantt.png")
    live = gantt.evaluate("Boolean(window.zondaLive)")
    if live:
        gantt.evaluate(WATCH_RUN_STATE)

    task = standalone_site.logged_in_page("Admin")  # a second tab: the Gantt stays open beside it
    task.goto(f"{run_page(CHAIN_DAG, run_id)}/tasks/b")
    clear_b_with_downstream(task)

    wait_on_gantt(gantt, bars(gantt, "c", "[data-try='2'][data-kind='running']:not(.bar-live)"))
    wait_on_gantt(gantt, gantt.locator(".run-summary .run-state[data-state=success]"))
    assert bars(gantt, "b", "[data-try='2'][data-kind='running']").count() == 1
    assert bars(gantt, "a", "[data-try='2']").count() == 0  # upstream of the cleared task: left alone
    if live:  # the same document all along, its run state passing through the re-run
        seen = gantt.evaluate("window.__runStates")
        assert seen[-1] == "success" and {"queued", "running"} & set(seen), seen
    assert standalone.wait_for_run(CHAIN_DAG, run_id) == "success"
    assert standalone.task_states(CHAIN_DAG, run_id) == RAN_AGAIN_FROM_B
    assert gantt.console_errors == [] and task.console_errors == []


# --- the grid -----------------------------------------------------------------------------------------------------

#: Marks the document; a navigation or reload would lose the mark.
MARK_DOCUMENT = "() => { window.__sameDocument = true; }"
SAME_DOCUMENT = "() => window.__sameDocument === true"
#: Records the classes a run's column head takes each time the grid redraws (grid.js redraws the head per load).
WATCH_RUN_HEAD = """(runId) => {
  window.__runHeads = [];
  const head = document.querySelector(".grid-head");
  const note = () => {
    const run = head.querySelector(`a.run[data-run-id="${CSS.escape(runId)}"]`);
    window.__runHeads.push(run ? run.className : "");
  };
  note();
  new MutationObserver(note).observe(head, { childList: true });
}"""


def grid_page(dag_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}"


def cell(page: Any, run_id: str, task_id: str, state: str = "") -> Any:
    """The grid's cell of ``task_id`` in ``run_id`` (in ``state`` if given)."""
    in_state = f".st-{state}" if state else ""
    return page.locator(f'a.cell{in_state}[data-run-id="{run_id}"][data-task-id="{task_id}"]')


def grid_of_a_finished_run(standalone: Any, site: Any, dag_id: str, state: str) -> tuple[str, Any]:
    """Trigger ``dag_id``, wait for its run to end in ``state``, open the DAG's grid in a logged-in page;
    (run id, page)."""
    run_id = standalone.trigger(dag_id)
    assert standalone.wait_for_run(dag_id, run_id) == state
    page = site.logged_in_page("Admin")
    page.goto(grid_page(dag_id))
    page.locator(f'.grid-head a.run[data-run-id="{run_id}"]').wait_for()
    return run_id, page


def test_a_run_triggered_from_the_form_turns_green_live_in_the_grid(standalone, standalone_site) -> None:
    standalone.wait_for_dag(GRID_DAG)
    page = standalone_site.logged_in_page("Admin")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "grid.json" in request.url else None)
    page.goto(f"{grid_page(GRID_DAG)}/trigger")
    assert "Rows to load" in page.locator("form.admin-form").inner_text()  # the param's description
    page.get_by_label("rows").fill("5")
    page.get_by_role("button", name="Trigger").click()
    page.wait_for_url(f"**{grid_page(GRID_DAG)}")
    flash = page.get_by_text(re.compile(f"Triggered {GRID_DAG}: run .* is queued")).inner_text()
    run_id = re.search(r"run (\S+) is queued", flash).group(1)
    assert standalone.run_conf(GRID_DAG, run_id) == {"rows": 5}

    page.locator(f'.grid-head a.run[data-run-id="{run_id}"]').wait_for()
    page.evaluate(MARK_DOCUMENT)
    page.evaluate(WATCH_RUN_HEAD, run_id)
    cell(page, run_id, "load", "success").wait_for(timeout=RUN_TIMEOUT_SECONDS * 1000)
    for task in ("extract", "transform.clean", "transform.join"):
        assert "st-success" in cell(page, run_id, task).get_attribute("class")
    heads = page.evaluate("window.__runHeads")
    assert "st-success" not in heads[0] and "st-success" in heads[-1], heads  # it turned green while watched
    assert page.evaluate(SAME_DOCUMENT) and len(asked) > 1  # redrawn from grid.json again, never reloaded

    # Two more runs, one failing, for the README's picture: several runs, their states, a folded group.
    failing = standalone.trigger(GRID_DAG, rows=-1)
    passing = standalone.trigger(GRID_DAG, rows=7)
    cell(page, failing, "load", "failed").wait_for(timeout=RUN_TIMEOUT_SECONDS * 1000)
    cell(page, passing, "load", "success").wait_for(timeout=RUN_TIMEOUT_SECONDS * 1000)
    page.get_by_role("button", name="Fold transform").click()
    assert page.locator('.cell.group[data-group-id="transform"]').count() == 3
    assert cell(page, run_id, "transform.clean").count() == 0
    assert page.evaluate(SAME_DOCUMENT)
    save_screenshot(page.locator("main"), "grid.png")
    assert page.console_errors == []


def test_a_failed_tasks_log_is_one_click_from_the_grid(standalone, standalone_site) -> None:
    run_id, page = grid_of_a_finished_run(standalone, standalone_site, FAILING_DAG, "failed")
    cell(page, run_id, "boom", "failed").click()
    page.wait_for_url(f"**/runs/{quote(run_id, safe='')}/tasks/boom?map_index=-1")
    assert page.locator("h1 .state").inner_text() == "failed"
    page.locator(".log-line", has_text=FAILURE_LINE).first.wait_for()
    assert page.console_errors == []


def test_a_clear_with_downstream_from_the_grids_menu_runs_the_tasks_again_live(standalone, standalone_site) -> None:
    run_id, page = grid_of_a_finished_run(standalone, standalone_site, CHAIN_DAG, "success")
    cell(page, run_id, "c", "success").wait_for()
    page.evaluate(MARK_DOCUMENT)

    cell(page, run_id, "b").click(button="right")
    dialog = page.get_by_role("dialog")
    assert dialog.locator("h2").inner_text() == f"Task b in run {run_id}"
    clear_b_with_downstream(dialog)
    page.keyboard.press("Escape")

    page.locator(f'a.cell[data-run-id="{run_id}"][data-task-id="c"]:not(.st-success)').wait_for()
    cell(page, run_id, "c", "success").wait_for(timeout=RUN_TIMEOUT_SECONDS * 1000)
    assert "st-success" in cell(page, run_id, "b").get_attribute("class")
    assert page.evaluate(SAME_DOCUMENT)
    assert standalone.wait_for_run(CHAIN_DAG, run_id) == "success"
    assert standalone.task_states(CHAIN_DAG, run_id) == RAN_AGAIN_FROM_B
    assert page.console_errors == []
