"""The ``ui`` blueprint: login and logout, ``/health``, static files and the DAGs list.

Views parse the request, call :mod:`zonda.operations` and render a template (autoescaped: nothing from a DAG file,
a user or a log is marked safe). Every change is a POST carrying the CSRF token, and is audited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, send_from_directory

from zonda.web.audit import audit
from zonda.web.context import web_context
from zonda.web.permissions import Permission, authorize, requires
from zonda.web.responses import problem
from zonda.web.sessions import current_user, login_user, logout_user, pop_end_reason

STATIC_FOLDER = Path(__file__).resolve().parent.parent / "static"

ui = Blueprint("ui", __name__)

#: How many of each DAG's newest runs the DAGs page shows as coloured dots.
RECENT_RUNS = 5


@ui.app_context_processor
def _template_helpers() -> dict[str, Any]:
    def can(permission: str) -> bool:
        return authorize(current_user(), Permission[permission])

    return {"current_user": current_user(), "can": can}


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else the DAGs page: a login link never sends a user elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dags"
    if any(c in target for c in "\r\n\t") or target.startswith("/login"):
        return "/dags"
    return target


@ui.get("/static/<path:filename>")
@requires(Permission.PUBLIC)
def static(filename: str) -> Any:
    return send_from_directory(STATIC_FOLDER, filename, max_age=3600)


@ui.get("/health")
@requires(Permission.PUBLIC)
def health() -> Any:
    from zonda.operations.health import check_health

    context = web_context()
    timeout = float(context.settings.get("scheduler", "scheduler_heartbeat_timeout"))
    return jsonify(check_health(context.engine, timeout).as_json())


@ui.get("/login")
@requires(Permission.PUBLIC)
def login_form() -> Any:
    if current_user() is not None:
        return redirect(safe_next(request.args.get("next")), 302)
    return render_template("login.html", next=safe_next(request.args.get("next")), notice=pop_end_reason())


@ui.post("/login")
@requires(Permission.PUBLIC)
def login() -> Any:
    from zonda.operations.users import verify_password

    username = request.form.get("username", "")
    password = request.form.get("password", "")
    target = safe_next(request.form.get("next"))
    limiter = web_context_limiter()
    wait = limiter.retry_after(username, request.remote_addr)
    if wait:
        audit("login.refused", username, {"reason": "too many failed logins"}, user=None)
        return problem(
            429,
            "Too many failed logins",
            f"Too many failed logins; try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    user = verify_password(web_context().engine, username, password) if username and password else None
    if user is None:
        limiter.failed(username, request.remote_addr)
        audit("login.failure", username or None)
        return render_template("login.html", next=target, error="Wrong username or password."), 401
    limiter.succeeded(username)
    login_user(user)
    audit("login.success", user.username)
    return redirect(target, 303)


def web_context_limiter() -> Any:
    from flask import current_app

    return current_app.extensions["zonda_login_limiter"]


@ui.post("/logout")
@requires(Permission.AUTHENTICATED)
def logout() -> Any:
    user = current_user()
    audit("logout", user.username)
    logout_user()
    return redirect("/login", 303)


@ui.get("/")
@requires(Permission.AUTHENTICATED)
def index() -> Any:
    return redirect("/dags", 302)


@ui.get("/dags")
@requires(Permission.READ)
def dags() -> Any:
    from zonda.operations.dag_list import DagFilter, browse_dags
    from zonda.operations.plugin_errors import plugin_load_errors
    from zonda.web.views.load_errors import plugin_manager

    paused = request.args.get("paused", "")
    wanted = DagFilter(
        search=request.args.get("search", "").strip()[:250],
        tags=tuple(tag for tag in request.args.getlist("tag") if tag)[:20],
        owner=request.args.get("owner", "").strip()[:250],
        paused={"true": True, "false": False}.get(paused),
    )
    page = request.args.get("page", "1")
    if not page.isdigit():
        return problem(400, "Bad request", f"page must be a whole number of 1 or more, got {page[:20]!r}")
    listing = browse_dags(web_context().engine, wanted, recent=RECENT_RUNS, visible_to=current_user(), page=int(page))
    failed_plugins = plugin_load_errors(plugin_manager(), masked=False)
    return render_template(
        "dags.html", listing=listing, wanted=wanted, failed_plugins=failed_plugins, page_link=dags_page_link
    )


def dags_page_link(page: int) -> str:
    """The DAGs page's URL for ``page``, keeping the filters the user chose."""
    from urllib.parse import urlencode

    kept = [(key, value) for key, value in request.args.items(multi=True) if key != "page" and value]
    return "/dags?" + urlencode([*kept, ("page", str(page))])


@ui.post("/dags/<dag_id>/paused")
@requires(Permission.PAUSE_DAGS)
def set_paused(dag_id: str) -> Any:
    from zonda.exceptions import NotFound
    from zonda.operations.dags import set_paused as pause

    wanted = request.form.get("paused", "")
    if wanted not in ("true", "false"):
        return problem(400, "Bad request", "paused must be true or false")
    paused = wanted == "true"
    try:
        pause(web_context().engine, dag_id, paused)
    except NotFound as exc:
        return problem(404, "Not found", str(exc))
    audit("dag.pause" if paused else "dag.unpause", dag_id)
    return redirect("/dags", 303)
