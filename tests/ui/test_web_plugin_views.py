"""Plugin views and menu links: the example plugin's page and link, and plugins refused for undeclared routes."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import post

pytestmark = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)

EXAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "runbook_plugin" / "plugins"


def _install_example(settings: Any) -> None:
    folder = settings.plugins_folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "runbook.py", folder / "runbook.py")
    shutil.copytree(EXAMPLE / "runbook_templates", folder / "runbook_templates")


def test_the_example_plugin_adds_a_view_and_a_menu_link(web_settings, make_web_app) -> None:
    _install_example(web_settings)
    web = make_web_app()
    op = web.logged_in("Op")
    payload = "<script>alert(1)</script>"
    assert (
        post(web, op, "/variables", {"key": "runbook", "value": json.dumps({"Disk full": payload})}).status_code == 303
    )
    viewer = web.logged_in("Viewer")
    page = viewer.get("/runbook")
    assert page.status_code == 200
    assert "Disk full" in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert '<a href="/runbook" class="plugin-link">Runbook</a>' in viewer.get("/dags").text
    anonymous = web.client().get("/runbook")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login?next=")
    plugins_page = viewer.get("/plugins").text
    assert "runbook" in plugins_page and "zonda_menu_links, zonda_web_views" in plugins_page


BAD_PLUGIN = """
from flask import Blueprint
from zonda import hookimpl
from zonda.web.permissions import Permission, requires

sneaky = Blueprint("sneaky", __name__)

@sneaky.get("/sneaky")
def open_to_all():
    return "secret data"

fine = Blueprint("fine_view", __name__)

@fine.get("/fine")
@requires(Permission.READ)
def fine_view():
    return "fine"

@hookimpl
def zonda_web_views():
    return [sneaky, (fine, "/extra")]

@hookimpl
def zonda_menu_links():
    return [{"name": "Evil", "href": "javascript:alert(1)"}, {"name": "Docs", "href": "https://example.org/docs"}]
"""


def test_a_plugin_route_without_a_permission_is_refused_naming_the_plugin_and_the_app_starts(
    web_settings, make_web_app, caplog: pytest.LogCaptureFixture
) -> None:
    folder = web_settings.plugins_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leaky_plugin.py").write_text(textwrap.dedent(BAD_PLUGIN))
    with caplog.at_level(logging.ERROR, logger="zonda.web.plugin_views"):
        web = make_web_app()
    refusals = [r.getMessage() for r in caplog.records]
    assert any(
        "plugin 'leaky_plugin': its view(s) sneaky.open_to_all /sneaky declare no permission" in m for m in refusals
    )
    assert all("\n" not in m for m in refusals)
    admin = web.logged_in("Admin")
    assert admin.get("/sneaky").status_code == 404
    assert admin.get("/extra/fine").text == "fine"
    nav = admin.get("/dags").text
    assert "javascript:" not in nav and 'href="https://example.org/docs"' in nav
    plugins_page = admin.get("/plugins").text
    assert "declare no permission" in plugins_page and "href must be a path" in plugins_page
    assert "loaded with errors" in plugins_page


def test_a_blueprint_clashing_with_a_zonda_one_is_refused(web_settings, make_web_app) -> None:
    folder = web_settings.plugins_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clash_plugin.py").write_text(
        textwrap.dedent(
            """
            from flask import Blueprint
            from zonda import hookimpl

            @hookimpl
            def zonda_web_views():
                return [Blueprint("connections", __name__), "not a blueprint"]
            """
        )
    )
    web = make_web_app()
    errors = web.app.extensions["zonda_plugin_web"].errors
    assert [plugin for plugin, _ in errors] == ["clash_plugin", "clash_plugin"]
    assert "clashes with an existing one" in errors[0][1] and "not a Flask Blueprint" in errors[1][1]
    assert web.logged_in("Op").get("/connections").status_code == 200
