"""Accessibility: axe-core (vendored, static/vendor/axe.min.js) finds no serious or critical violation on the login
page and the DAGs page, in the light theme (the system's choice) and in the dark one (chosen with the toggle,
which is kept across pages); the skip link is the first stop of the keyboard."""

from __future__ import annotations

from typing import Any

import pytest

from zonda.metastore import tables as t

STATES = ("success", "failed", "running", "queued", "up_for_retry", "skipped", "upstream_failed", "deferred")
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.map(n => n.target.join(" "))}));
}"""


def add_dags(engine: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            t.dag.insert().values(
                dag_id="accessible_dag", description="Runs in every state", is_paused=False, is_active=True
            )
        )
        conn.execute(t.dag.insert().values(dag_id="paused_dag", is_paused=True, is_active=True, schedule="@daily"))
        for number, state in enumerate(STATES):  # four runs each: all of them among the five recent ones shown
            dag_id = "accessible_dag" if number % 2 else "paused_dag"
            conn.execute(t.dag_run.insert().values(dag_id=dag_id, run_id=f"r{number}", run_type="manual", state=state))


def serious_violations(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(url="/static/vendor/axe.min.js")  # same origin: allowed by script-src 'self'
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in ("serious", "critical")]


def choose_dark_theme(page: Any) -> None:
    toggle = page.locator("#theme-toggle")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"


def background(page: Any) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_login_and_dags_pages_have_no_serious_axe_violations(site, theme) -> None:
    add_dags(site.engine)
    page = site.new_page(color_scheme="light")
    page.goto("/login")
    if theme == "dark":
        choose_dark_theme(page)
    assert background(page) == ("rgb(255, 255, 255)" if theme == "light" else "rgb(18, 22, 29)")
    assert serious_violations(page) == []

    page.fill("input[name=username]", site.web.users["User"])
    page.fill("input[name=password]", site.web.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/dags")
    assert page.locator("[data-recent-runs] .state-dot").count() == len(STATES)
    assert background(page) == ("rgb(255, 255, 255)" if theme == "light" else "rgb(18, 22, 29)")
    assert serious_violations(page) == []
    assert page.console_errors == []


def test_the_system_dark_preference_is_followed_and_the_skip_link_comes_first(site) -> None:
    page = site.logged_in_page("Viewer", color_scheme="dark")
    assert background(page) == "rgb(18, 22, 29)"
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    assert page.locator(".skip-link").bounding_box()["y"] >= 0  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
