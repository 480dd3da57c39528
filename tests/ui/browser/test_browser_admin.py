"""The admin pages in Chromium: editing a connection never brings its password to the page or into any
response, and the trigger form creates a run (with a field error first)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from zonda.metastore import tables as t

PASSWORD = "browser-pw-Sekr1t"
TOKEN = "browser-token-Sekr1t"


def _collect_bodies(page: Any) -> list[tuple[str, bytes]]:
    bodies: list[tuple[str, bytes]] = []

    def keep(response: Any) -> None:
        try:
            bodies.append((response.url, response.body()))
        except Exception as exc:  # a redirect has no body to read
            bodies.append((response.url, str(exc).encode()))

    page.on("response", keep)
    return bodies


def test_edit_a_connection_without_its_password_reaching_the_page_or_any_response(site) -> None:
    from zonda.connection import Connection
    from zonda.operations.connections import add_connection
    from zonda.secrets.metastore import MetastoreBackend

    web = site.web
    add_connection(
        web.store,
        web.settings,
        Connection(
            conn_id="warehouse",
            conn_type="postgres",
            host="db",
            login="u",
            password=PASSWORD,
            extra={"api_token": TOKEN, "sslmode": "require"},
        ),
    )
    page = site.logged_in_page("Op")
    bodies = _collect_bodies(page)
    page.goto("/connections")
    page.get_by_role("link", name="warehouse").click()
    page.wait_for_url("**/connections/warehouse/edit")
    password_input = page.locator("input[name=password]")
    assert password_input.input_value() == ""
    assert "stored" in (password_input.get_attribute("placeholder") or "")
    page.fill("input[name=host]", "db2.internal")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/connections")
    assert page.get_by_text("Connection warehouse saved.").is_visible()
    page.get_by_role("button", name="Test warehouse").click()
    page.wait_for_url("**/connections")
    html = page.content()
    assert PASSWORD not in html and TOKEN not in html
    assert len(bodies) >= 4
    leaks = [url for url, body in bodies if PASSWORD.encode() in body or TOKEN.encode() in body]
    assert leaks == []
    stored = MetastoreBackend(web.store, web.settings).get_connection("warehouse")
    assert (stored.host, stored.password, stored.extra["api_token"]) == ("db2.internal", PASSWORD, TOKEN)
    assert page.console_errors == []


def test_trigger_from_the_form_shows_a_field_error_then_creates_the_run(site) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from admin_helpers import store_params_dag

    store_params_dag(site.web, description="<script>window.pwned = 1</script>")
    page = site.logged_in_page("User")
    page.goto("/dags/params_dag/trigger")
    assert page.get_by_text("<script>window.pwned = 1</script>").is_visible()
    page.fill("input[name='param.target']", "x")
    page.get_by_role("button", name="Trigger").click()
    assert page.get_by_text("must be at least 2 characters").is_visible()
    assert page.locator("input[name='param.target']").input_value() == "x"
    page.fill("input[name='param.target']", "warehouse")
    page.fill("input[name='param.count']", "4")
    page.get_by_role("button", name="Trigger").click()
    page.wait_for_url("**/dags/params_dag")
    assert page.evaluate("window.pwned") is None
    with site.engine.connect() as conn:
        runs = conn.execute(select(t.dag_run).where(t.dag_run.c.dag_id == "params_dag")).all()
    from zonda import serde

    assert len(runs) == 1
    assert serde.loads(runs[0].conf) == {
        "count": 4,
        "ratio": 0.5,
        "mode": "fast",
        "dry_run": False,
        "tags": ["a"],
        "target": "warehouse",
    }
