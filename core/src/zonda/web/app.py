"""``create_app(settings)``: the Flask application factory.

Everything the app needs hangs off the app itself (``app.extensions``), nothing is global, so a test builds as
many apps as it likes side by side. Extensions attach through ``init_app`` in the order their ``before_request``
hooks must run: an API token, else the session (who is this?), then access control (may they?), then CSRF (is
this request from our own page?). A route without a declared permission stops ``create_app`` with an error naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from flask import Response

    from zonda.config import Settings

#: Sent with every answer: no framing by other sites, no MIME sniffing, scripts and styles from this origin only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def create_app(
    settings: Settings,
    *,
    engine: Any = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The web application for this installation.

    ``engine``: the metastore's SQLAlchemy engine (default: the configured metastore, which must be migrated);
    ``clock``: seconds since the epoch, for session timeouts and login rate limits.
    """
    from zonda.plugins.manager import PluginManager
    from zonda.web.access import AccessControl, routes_without_permission
    from zonda.web.api.errors import install_api_errors
    from zonda.web.api_auth import ApiTokenAuth
    from zonda.web.audit import AuditTrail
    from zonda.web.context import WebContext
    from zonda.web.csrf import CsrfProtection
    from zonda.web.live.feed import ChangeFeed
    from zonda.web.plugin_views import install_plugin_views
    from zonda.web.rate_limit import LoginRateLimiter
    from zonda.web.secret_key import ensure_secret_key
    from zonda.web.sessions import UserSessions
    from zonda.web.views.api_v1 import api_v1
    from zonda.web.views.audit_log import audit_log_views
    from zonda.web.views.catalog import catalog_views
    from zonda.web.views.connections import connection_views
    from zonda.web.views.dag import dag_pages
    from zonda.web.views.dags_live import dags_live
    from zonda.web.views.events import live
    from zonda.web.views.load_errors import PLUGIN_MANAGER_KEY, load_errors
    from zonda.web.views.pools import pool_views
    from zonda.web.views.run_gantt import run_gantt
    from zonda.web.views.task_actions import task_actions
    from zonda.web.views.task_instance import task_instance
    from zonda.web.views.trigger import trigger_views
    from zonda.web.views.ui import ui
    from zonda.web.views.users import user_views
    from zonda.web.views.variables import variable_views

    secret_key = ensure_secret_key(settings)
    if engine is None:
        from zonda.metastore.db import Metastore

        engine = Metastore.open(settings).engine
    app = Flask("zonda.web", static_folder=None, template_folder="templates")
    app.config.update(SECRET_KEY=secret_key, MAX_CONTENT_LENGTH=16 * 1024 * 1024, TEMPLATES_AUTO_RELOAD=False)
    app.extensions["zonda"] = WebContext(settings=settings, engine=engine, clock=clock)
    ApiTokenAuth().init_app(app)
    UserSessions().init_app(app)
    AccessControl().init_app(app)
    CsrfProtection().init_app(app)
    LoginRateLimiter().init_app(app)
    AuditTrail().init_app(app)
    ChangeFeed().init_app(app)
    app.register_blueprint(ui)
    app.register_blueprint(api_v1)
    app.register_blueprint(dag_pages)
    app.register_blueprint(load_errors)
    app.register_blueprint(live)
    app.register_blueprint(dags_live)
    app.register_blueprint(run_gantt)
    app.register_blueprint(task_instance)
    app.register_blueprint(task_actions)
    app.register_blueprint(trigger_views)
    app.register_blueprint(connection_views)
    app.register_blueprint(variable_views)
    app.register_blueprint(pool_views)
    app.register_blueprint(catalog_views)
    app.register_blueprint(audit_log_views)
    app.register_blueprint(user_views)
    # Plugins are imported now, once, not by whichever request first asks (waitress serves in threads).
    plugins = app.extensions[PLUGIN_MANAGER_KEY] = PluginManager.from_settings(settings).load()
    app.extensions["zonda_plugin_web"] = install_plugin_views(app, plugins)
    app.jinja_env.globals["plugin_menu_links"] = lambda: app.extensions["zonda_plugin_web"].menu_links
    install_api_errors(app)
    app.after_request(_security_headers)
    missing = routes_without_permission(app)
    if missing:
        raise ZondaException(f"routes without a declared permission: {', '.join(missing)}; add @requires(...)")
    return app


def _security_headers(response: Response) -> Response:
    from flask import request

    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


__all__ = ["SECURITY_HEADERS", "create_app"]
