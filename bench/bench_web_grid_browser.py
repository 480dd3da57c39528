"""How soon the grid of 1,000 tasks x 25 runs is interactive in Chromium (goal: <= 300 ms): the real web server
on loopback, Debian's Chromium through Playwright, timed from the start of navigation to the moment the first
cells are drawn (read in the page, ``performance.now()``), best and median of N loads. Then a scroll to the
bottom and a fold of a group, timed from Python until the rows are drawn (including Playwright's round trips).

    python3 bench/bench_web_grid_browser.py [--repeat 7]

Prints figures only. Needs /usr/bin/chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ui"))  # dag_fixtures: DAGs and runs in bulk

from _venv import reexec_in_venv

CHROMIUM = "/usr/bin/chromium"
FIRST_CELL = ".grid-row a.cell"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from web_bench_app import make_app, store_grid_dag

    from zonda.web.server import WebServer

    with tempfile.TemporaryDirectory(prefix="zonda-bench-grid-browser-") as tmp:
        app, store, _client = make_app(Path(tmp))
        store_grid_dag(store, "bench_grid", args.tasks, args.runs)
        server = WebServer(app, "127.0.0.1", 0, threads=32)  # the default: each page holds one /events stream
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
        thread.start()
        try:
            _measure(server.url, args.repeat, args.tasks, args.runs)
        finally:
            stop.set()
            thread.join(10)
            store.dispose()


def _measure(url: str, repeat: int, tasks: int, runs: int) -> None:
    last_task = f"group_{(tasks - 1) // 50}.task_{tasks - 1:04d}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(base_url=url).new_page()
        page.goto("/login")
        page.fill("input[name=username]", "viewer")
        page.fill("input[name=password]", "bench password")
        page.click("button[type=submit]")
        page.wait_for_url("**/dags")
        loads, scrolls, folds = [], [], []
        for _ in range(repeat + 1):  # the first load warms caches and is not counted
            page.goto("/dags/bench_grid")
            page.wait_for_selector(FIRST_CELL)
            # page.evaluate() waits forever under this CSP (no eval); a locator's evaluate runs in the page
            loads.append(page.locator(".grid-body").evaluate("() => performance.now()"))
            grid = page.locator(".grid-body")
            started = time.perf_counter()
            grid.evaluate("(body) => { body.scrollTop = body.scrollHeight; }")
            page.wait_for_selector(f'a.cell[data-task-id="{last_task}"]')
            scrolls.append((time.perf_counter() - started) * 1000)
            grid.evaluate("(body) => { body.scrollTop = 0; }")
            page.wait_for_selector('button[aria-label="Fold group_0"]')
            started = time.perf_counter()
            page.click('button[aria-label="Fold group_0"]')
            page.wait_for_selector('button[aria-label="Unfold group_0"]')
            folds.append((time.perf_counter() - started) * 1000)
        rows = page.locator(".grid-row").count()
        browser.close()
    for label, measured in (("load to first cells", loads), ("scroll to the bottom", scrolls), ("fold a group", folds)):
        values = measured[1:]
        goal = (
            "  goal <= 300 ms: " + ("met" if statistics.median(values) <= 300 else "NOT met") if label[0] == "l" else ""
        )
        print(
            f"grid {tasks} tasks x {runs} runs, {label:<22} median {statistics.median(values):7.1f} ms  "
            f"best {min(values):7.1f} ms{goal}"
        )
    print(f"rows in the DOM at the end: {rows} (of {tasks + tasks // 50} rows)")


if __name__ == "__main__":
    reexec_in_venv(__file__)
    main()
