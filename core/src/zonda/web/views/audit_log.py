"""The ``audit_log`` blueprint: who changed what, newest first, paged, filtered by user, action or target.
For every role that reads (Viewer and up), as Airflow's audit log is."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, render_template, request

from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires
from zonda.web.sessions import current_user

audit_log_views = Blueprint("audit_log", __name__)

PAGE_SIZE = 50
MAX_PAGE = 10_000


@audit_log_views.app_template_filter("json_text")
def json_text(value: Any) -> str:
    """``value`` as JSON text, left to autoescaping (``tojson`` would show ``<`` as ``\\u003c``)."""
    return json.dumps(value, sort_keys=True, default=str)


@audit_log_views.get("/audit-log")
@requires(Permission.READ)
def audit_log() -> Any:
    from zonda.operations.audit import list_entries

    filters = {name: request.args.get(name, "").strip() or None for name in ("user", "action", "target")}
    page_text = request.args.get("page", "1")
    page = min(int(page_text), MAX_PAGE) if page_text.isdigit() and int(page_text) > 0 else 1
    entries = list_entries(
        web_context().engine,
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
        visible_to=current_user(),
        **filters,
    )
    query = {k: v for k, v in filters.items() if v}

    def page_link(number: int) -> str:
        return "/audit-log?" + urlencode({**query, "page": number})

    return render_template(
        "admin/audit_log.html",
        entries=entries[:PAGE_SIZE],
        filters=filters,
        page=page,
        previous=page_link(page - 1) if page > 1 else None,
        next=page_link(page + 1) if len(entries) > PAGE_SIZE else None,
    )
