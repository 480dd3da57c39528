"""What went wrong loading DAG files, with the tracebacks (masked): the page the DAGs page's import-error banner
links to. Plugin load errors have no page of their own: the Plugins page shows them beside the plugins that loaded."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires
from zonda.web.sessions import current_user

load_errors = Blueprint("load_errors", __name__)

#: Where create_app keeps the app's plugin manager (its plugins imported once, when the app is made).
PLUGIN_MANAGER_KEY = "zonda_plugin_manager"


def plugin_manager() -> Any:
    return current_app.extensions[PLUGIN_MANAGER_KEY]


@load_errors.get("/import-errors")
@requires(Permission.READ)
def import_errors() -> Any:
    from zonda.operations.import_errors import list_import_errors

    context = web_context()
    errors = list_import_errors(context.engine, settings=context.settings, visible_to=current_user())
    return render_template("import_errors.html", errors=errors)
