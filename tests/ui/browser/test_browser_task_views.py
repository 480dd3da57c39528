"""The Gantt view, the task instance page and its log, and clear with a preview, in Chromium on seeded runs.

The run is ``task_views_seed``'s (``a >> b >> c``, ``a >> d``; b retried, c deferred once), so every bar and the
critical path are known. Logs are files where the task-log handler reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from task_views_seed import RUN_ID, seed_gantt_run
from test_browser_accessibility import serious_violations

from zonda.metastore import tables as t

RUN_PAGE = f"/dags/gantt/runs/{RUN_ID}"
#: Lines of the big log; the page must hold only a window of them in the DOM.
BIG_LOG = 100_000
#: Line nodes the log view may hold at once: a screenful plus its overscan, far below the log's length.
MAX_LINE_NODES = 200


def write_log(site: Any, task_id: str, try_number: int, lines: list[str]) -> Path:
    from zonda.runner.logs import attempt_log_path

    path = attempt_log_path(site.web.settings.log_folder, "gantt", RUN_ID, task_id, -1, try_number)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def states(site: Any) -> dict[str, str | None]:
    ti = t.task_instance
    with site.engine.connect() as conn:
        return {row.task_id: row.state for row in conn.execute(select(ti.c.task_id, ti.c.state))}


def test_the_gantt_draws_each_try_marks_the_critical_path_and_a_bar_opens_its_task(site) -> None:
    seed_gantt_run(site.engine)
    write_log(site, "b", 2, ["b's second try"])
    page = site.logged_in_page("Viewer")
    page.goto(RUN_PAGE)
    chart = page.locator("svg.gantt-svg")
    chart.wait_for()
    assert "critical path: a → b → c" in page.locator(".gantt-status").inner_text()

    tries = page.locator("a.gantt-row[href$='/tasks/b'] rect.bar")
    assert [(r.get_attribute("data-try"), r.get_attribute("data-kind")) for r in tries.all()] == [
        ("1", "queued"),
        ("1", "running"),
        ("2", "queued"),
        ("2", "running"),
    ]
    kinds_of_c = [r.get_attribute("data-kind") for r in page.locator("a.gantt-row[href$='/tasks/c'] rect.bar").all()]
    assert kinds_of_c == ["queued", "running", "deferred", "queued", "running"]

    def outline(task_id: str) -> set[str]:
        bars = page.locator(f"a.gantt-row[href$='/tasks/{task_id}'] rect.bar")
        return {b.evaluate("node => getComputedStyle(node).stroke") for b in bars.all()}

    critical_red = "rgb(179, 38, 30)"  # the light theme's --danger
    assert outline("a") == outline("b") == outline("c") == {critical_red}
    assert critical_red not in outline("d")  # beside the path: not marked
    swatch = page.locator(".legend-critical").evaluate("node => getComputedStyle(node).borderLeftColor")
    assert swatch == critical_red  # the legend says what the red outline means

    page.locator("a.gantt-row[href$='/tasks/b'] rect.bar[data-try='2'][data-kind='running']").click()
    page.wait_for_url(f"**{RUN_PAGE}/tasks/b")
    assert page.locator("h1 .task-id").inner_text() == "b"
    page.locator(".log-line", has_text="b's second try").wait_for()
    assert page.console_errors == []


def test_a_big_log_opens_at_its_end_scrolls_searches_downloads_and_shows_markup_as_text(site, tmp_path) -> None:
    seed_gantt_run(site.engine)
    lines = [f"line {n}" for n in range(BIG_LOG)]
    lines[BIG_LOG // 2] = "the needle is here"
    lines[-3] = "\x1b[1;31mred alert\x1b[0m back to plain"
    lines[-2] = "<script>window.__pwned = 'script'</script> and <img src=x onerror=\"window.__pwned = 'img'\">"
    write_log(site, "b", 2, lines)
    page = site.logged_in_page("Viewer")
    page.goto(f"{RUN_PAGE}/tasks/b")
    view = page.locator(".log-view")

    last = page.locator(".log-line", has_text=f"line {BIG_LOG - 1}")
    last.wait_for()
    assert view.evaluate("v => v.scrollTop + v.clientHeight >= v.scrollHeight - 1")  # opened at the end
    assert page.locator(".log-line").count() <= MAX_LINE_NODES

    red = page.locator(".log-text span.ansi-fg-31.ansi-bold")
    assert red.inner_text() == "red alert"
    assert red.evaluate("node => getComputedStyle(node).color") != view.evaluate("v => getComputedStyle(v).color")
    markup = page.locator(".log-line", has_text="window.__pwned = 'script'")
    assert markup.locator(".log-text").inner_text() == lines[-2]
    assert page.locator(".log-view script, .log-view img").count() == 0
    assert page.evaluate("window.__pwned") is None

    view.evaluate("v => { v.scrollTop = 0; }")
    page.locator(".log-line", has_text="line 0").first.wait_for()
    assert page.locator(".log-number").first.inner_text() == "1"
    assert page.locator(".log-line").count() <= MAX_LINE_NODES

    search = page.locator(".log-search")
    search.fill("needle")
    search.press("Enter")
    hit = page.locator(".log-line.log-hit", has_text="the needle is here")
    hit.wait_for()  # its block of lines is fetched after the jump: "…" until then
    assert hit.locator(".log-number").inner_text() == str(BIG_LOG // 2 + 1)
    assert page.locator(".log-hits").inner_text() == "Match 1 of 1"
    assert page.locator(".log-line").count() <= MAX_LINE_NODES

    with page.expect_download() as download_info:
        page.locator(".log-download").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert download.suggested_filename.endswith(".log")
    assert saved.read_text(encoding="utf-8").splitlines() == lines
    assert page.console_errors == []


def test_a_line_written_to_a_running_try_appears_live(site) -> None:
    seed_gantt_run(site.engine, c_state="running")
    path = write_log(site, "c", 1, ["started", "working"])
    page = site.logged_in_page("Viewer")
    page.goto(f"{RUN_PAGE}/tasks/c")
    page.locator(".log-line", has_text="working").wait_for()
    with path.open("a", encoding="utf-8") as handle:
        handle.write("written while the page was open\n")
    page.locator(".log-line", has_text="written while the page was open").wait_for()
    assert page.locator(".log-number").last.inner_text() == "3"
    assert "(live)" in page.locator(".log-hits").inner_text()
    assert page.console_errors == []


def test_clear_with_downstream_previews_then_confirms(site) -> None:
    seed_gantt_run(site.engine)
    write_log(site, "b", 2, ["b ran"])
    page = site.logged_in_page("User")
    page.goto(f"{RUN_PAGE}/tasks/b")
    page.get_by_label("downstream").check()
    page.get_by_role("button", name="Clear…").click()
    summary = page.locator(".preview-summary")
    summary.get_by_text("This will clear 2 task instance(s)").wait_for()
    assert page.locator(".preview-list li").all_inner_texts() == [
        f"b in {RUN_ID} (success)",
        f"c in {RUN_ID} (success)",
    ]
    assert states(site) == {"a": "success", "b": "success", "c": "success", "d": "success"}  # a preview changes nothing

    page.get_by_role("button", name="Confirm").click()
    summary.get_by_text("Done: 2 changed.").wait_for()
    page.locator("h1 .state", has_text="none").wait_for()  # the page reloads with the cleared state
    assert states(site) == {"a": "success", "b": None, "c": None, "d": "success"}
    assert page.console_errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_gantt_and_task_pages_have_no_serious_axe_violations(site, scheme) -> None:
    seed_gantt_run(site.engine)
    write_log(site, "b", 2, ["\x1b[31mred\x1b[0m and plain", "plain"])
    page = site.logged_in_page("User", color_scheme=scheme)
    page.goto(RUN_PAGE)
    page.locator("svg.gantt-svg").wait_for()
    assert serious_violations(page) == []  # links inside the chart: it is a group, not an image
    page.goto(f"{RUN_PAGE}/tasks/b")
    page.locator(".log-line", has_text="red and plain").wait_for()
    assert serious_violations(page) == []
    assert page.console_errors == []
