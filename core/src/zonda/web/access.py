"""Applies each route's declared permission before its view runs: the single gate every request passes.

A route that declares no permission is refused with 500 (fail closed; ``create_app`` already refuses to build
an app with one). An anonymous request that needs a login is sent to ``/login`` (pages) or answered 401 (JSON,
under ``/api/``); a logged-in user without the permission gets 403. On a route about one DAG (``<dag_id>`` in
the path), the user's per-DAG grants (:mod:`zonda.operations.dag_grants`) apply too: a hidden DAG is 404, a
lower role there 403.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

#: ``~`` in an API path: every DAG (Airflow's convention).
EVERY_DAG = "~"


def routes_without_permission(app: Flask) -> list[str]:
    """Every URL rule whose view declares no permission (``endpoint rule`` strings)."""
    from zonda.web.permissions import declared_permission

    return [
        f"{rule.endpoint} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if declared_permission(app.view_functions.get(rule.endpoint)) is None
    ]


class AccessControl:
    def init_app(self, app: Flask) -> None:
        app.extensions["zonda_access"] = self
        app.before_request(self._check)

    @staticmethod
    def _check() -> Any:
        from flask import current_app, redirect, request

        from zonda.web.permissions import authorize, declared_permission
        from zonda.web.responses import is_api_request, problem
        from zonda.web.sessions import current_user

        if request.endpoint is None:  # no route matched: Flask answers 404 / 405
            return None
        permission = declared_permission(current_app.view_functions.get(request.endpoint))
        if permission is None:
            log.error("route %s declares no permission; refused", request.endpoint)
            return problem(500, "Internal error", "This page declares no permission, so nobody may open it.")
        user = current_user()
        if authorize(user, permission):
            return _check_dag_scope(user, permission)
        if user is None:
            if is_api_request():
                return problem(401, "Unauthorized", "Log in, or send a valid Authorization header.")
            target = request.full_path if request.query_string else request.path
            return redirect("/login?" + urlencode({"next": target}), 302)
        return problem(403, "Forbidden", f"Your role ({user.role}) does not allow this.")


def _check_dag_scope(user: Any, permission: Any) -> Any:
    """For a route about one DAG (``<dag_id>`` in its path), the user's per-DAG grants: 404 when they hide the
    DAG (its existence is not confirmed), 403 when the grant's role there does not allow ``permission``. A user
    without grants passes without a query; so does ``~`` (every DAG), whose listings apply the grants in SQL."""
    from dataclasses import replace

    from flask import request

    from zonda.operations.dag_grants import dag_role
    from zonda.web.context import web_context
    from zonda.web.permissions import authorize
    from zonda.web.responses import problem

    dag_id = (request.view_args or {}).get("dag_id")
    if dag_id is None or user is None or not getattr(user, "has_grants", False):
        return None
    if dag_id == EVERY_DAG:  # a list over every DAG: its statement filters by the grants (writes refuse ``~``)
        return None
    role = dag_role(web_context().engine, user, str(dag_id))
    if role is None:
        return problem(404, "Not found", f"no DAG {dag_id!r} among the DAGs you may see")
    if not authorize(replace(user, role=role), permission):
        return problem(403, "Forbidden", f"Your role on DAG {dag_id!r} ({role}) does not allow this.")
    return None


__all__ = ["AccessControl", "routes_without_permission"]
