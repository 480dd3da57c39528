"""The browser fixtures work end to end: Debian's Chromium logs in through the real login form, sees the DAGs
page, and a wrong password keeps it on the login page with the error shown."""

from __future__ import annotations

from zonda.metastore import tables as t


def test_log_in_see_dags_and_log_out(site) -> None:
    with site.engine.begin() as conn:
        conn.execute(t.dag.insert().values(dag_id="browser_dag", is_paused=False, is_active=True, fileloc="/x.py"))
    page = site.logged_in_page("Viewer")
    assert page.locator("h1").first.inner_text() == "DAGs"
    assert page.get_by_text("browser_dag").count() >= 1
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto("/dags")
    assert "/login" in page.url
    assert page.console_errors == []


def test_wrong_password_stays_on_login_with_the_error(site) -> None:
    page = site.new_page()
    page.goto("/login")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.get_by_text("Wrong username or password.").is_visible()
    assert "/login" in page.url
