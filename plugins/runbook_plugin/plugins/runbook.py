"""A plugins-folder plugin that adds a page to the web UI: copy this file and ``runbook_templates/`` into
``$ZONDA_HOME/plugins/``.

It shows the two web hooks:

* ``zonda_web_views`` returns a Flask blueprint; each of its routes declares who may open it with
  ``@requires(Permission.X)`` right under the route (a route without one gets the plugin's views refused);
* ``zonda_menu_links`` puts a link to it in the navigation bar.

The page lists the team's runbook entries from a variable (``runbook``, a JSON object of title -> text), read
through Zonda's operations layer like every other page: the plugin writes no SQL of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zonda import hookimpl

TEMPLATES = Path(__file__).resolve().parent / "runbook_templates"


def _entries() -> dict[str, str]:
    from zonda.operations.variables import get_variable
    from zonda.web.context import web_context

    context = web_context()
    text = get_variable(context.settings, "runbook", default="{}", metastore=context.metastore())
    try:
        entries = json.loads(text)
    except ValueError:
        return {"runbook": "the variable 'runbook' is not JSON; store an object of title -> text"}
    return {str(k): str(v) for k, v in entries.items()} if isinstance(entries, dict) else {}


def make_blueprint() -> Any:
    from flask import Blueprint, render_template

    from zonda.web.permissions import Permission, requires

    blueprint = Blueprint("runbook", __name__, template_folder=str(TEMPLATES))

    @blueprint.get("/runbook")
    @requires(Permission.READ)
    def runbook() -> Any:
        return render_template("runbook.html", entries=_entries())

    return blueprint


@hookimpl
def zonda_web_views() -> list[Any]:
    return [make_blueprint()]


@hookimpl
def zonda_menu_links() -> list[dict[str, str]]:
    return [{"name": "Runbook", "href": "/runbook", "category": "Docs"}]
