"""The ``catalog`` blueprint: the Providers page (from the manifests) and the Plugins page (with load errors and
their tracebacks, masked). Both are for every role that reads (Viewer and up)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from zonda.web.permissions import Permission, requires

catalog_views = Blueprint("catalog", __name__)


@catalog_views.get("/providers")
@requires(Permission.READ)
def provider_list() -> Any:
    from zonda.operations.extensions import providers_report

    return render_template("admin/providers.html", report=providers_report())


@catalog_views.get("/plugins")
@requires(Permission.READ)
def plugin_list() -> Any:
    from zonda.web.plugin_views import installed_plugin_rows

    return render_template("admin/plugins.html", plugins=installed_plugin_rows())
