"""Every main page, once per theme, in one pass: axe-core finds no serious or critical violation, and the
injection payloads stored in everything that can carry them (doc_md, a param description, owner and tag, a run's
conf, a log line, an XCom value, a variable's value, a connection's and a pool's description) show as text and
never run (``window.__pwned`` stays undefined).

One pass visits each page once per theme (about thirty page loads): fast enough for the suite's budget.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import update
from task_views_seed import RUN_ID, add_xcom, seed_gantt_run
from test_browser_accessibility import choose_dark_theme, serious_violations
from test_browser_task_views import write_log

from zonda.metastore import tables as t

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'

SWEEP_DAG = """
from datetime import datetime
from zonda import DAG, Param
from zonda.operators import EmptyOperator

with DAG(
    "sweep",
    start_date=datetime(2024, 1, 1),
    schedule="@daily",
    doc_md={script!r},
    tags=[{img!r}],
    default_args={{"owner": {img!r}}},
    params={{"mode": Param("fast", enum=["fast", "slow"], description={script!r})}},
):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""


@dataclass(frozen=True)
class Visit:
    """A page, what shows it is drawn (scripts may draw after load), and the payloads it must show as text."""

    path: str
    ready: str
    shows: tuple[str, ...] = ()


GANTT = f"/dags/gantt/runs/{RUN_ID}"
PAGES = (
    Visit("/dags", "table.dags", (IMG,)),
    Visit("/dags/gantt", ".grid-row .cell"),
    Visit("/dags/gantt/graph", ".graph-canvas svg .node"),
    Visit("/dags/sweep/details", ".doc-md", (SCRIPT, IMG)),
    Visit("/dags/sweep/code", "pre.source", (SCRIPT,)),
    Visit(GANTT, "svg.gantt-svg"),
    Visit(f"{GANTT}/tasks/b", ".log-line >> text=window.__pwned", (SCRIPT, IMG)),
    Visit("/dags/sweep/trigger", "form", (SCRIPT,)),
    Visit("/dags/gantt/trigger", "section.recent-confs", (SCRIPT,)),
    Visit("/connections", "table", (IMG,)),
    Visit("/connections/sweep_conn/edit", "form", (IMG,)),
    Visit("/variables", "table", (SCRIPT,)),
    Visit("/pools", "table", (IMG,)),
    Visit("/audit-log", "main h1"),
    Visit("/users", "table"),
    Visit("/providers", "main h1"),
    Visit("/plugins", "main h1"),
)
#: Text in form fields (an edit form shows stored values there, not as page text).
FIELD_VALUES = "Array.from(document.querySelectorAll('main input, main textarea')).map(e => e.value).join('\\n')"


def seed_payloads(site: Any) -> None:
    """The DAGs, runs and admin records the pages show, each carrying a payload where data can."""
    from zonda.connection import Connection
    from zonda.dag_processing import DagProcessor
    from zonda.operations.connections import add_connection
    from zonda.operations.pools import set_pool
    from zonda.operations.variables import set_variable

    web = site.web
    folder = web.settings.dags_folder
    folder.mkdir(parents=True, exist_ok=True)
    source = textwrap.dedent(SWEEP_DAG.format(script=SCRIPT, img=IMG)).lstrip()
    (folder / "sweep.py").write_text(source, encoding="utf-8")
    with DagProcessor(web.settings, web.store) as processor:
        report = processor.run_once(full=True)
    assert not report.errors, report.errors

    run_id = seed_gantt_run(web.engine)
    write_log(site, "b", 2, ["before", f"\x1b[31m{SCRIPT}\x1b[0m {IMG}", "after"])
    with web.engine.begin() as conn:
        conn.execute(update(t.dag_run).where(t.dag_run.c.id == run_id).values(conf=json.dumps({"note": SCRIPT})))
    add_xcom(web.engine, run_id, "b", {"html": IMG})
    add_connection(
        web.store, web.settings, Connection(conn_id="sweep_conn", conn_type="generic", description=IMG, password="pw")
    )
    set_variable(web.settings, "sweep_var", SCRIPT, metastore=web.store)
    set_pool(web.engine, "sweep_pool", 3, description=IMG)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_main_page_is_accessible_and_shows_stored_markup_as_text(site, theme) -> None:
    seed_payloads(site)
    page = site.logged_in_page("Admin")
    if theme == "dark":
        choose_dark_theme(page)
    problems: dict[str, Any] = {}
    for visit in PAGES:
        page.goto(visit.path)
        page.locator(visit.ready).first.wait_for()
        assert page.evaluate("document.documentElement.dataset.theme || 'light'") == theme
        assert page.evaluate("typeof window.__pwned") == "undefined", f"a payload ran on {visit.path}"
        text = page.locator("main").inner_text() + "\n" + page.evaluate(FIELD_VALUES)
        missing = [payload for payload in visit.shows if payload not in text]
        violations = serious_violations(page)
        if missing or violations:
            problems[visit.path] = {"payloads not shown as text": missing, "axe": violations}
    assert problems == {}, json.dumps(problems, indent=1)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.console_errors == []
