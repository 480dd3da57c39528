"""Applies each route's declared permission before its view runs: the single gate every request passes.

A route that declares no permission is refused with 500 (fail closed; ``create_app`` already refuses to build
an app with one). An anonymous request that needs a login is sent to ``/login`` (pages) or answered 401 (JSON,
under ``/api/``); a logged-in user without the permission gets 403.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


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
            return None
        if user is None:
            if is_api_request():
                return problem(401, "Unauthorized", "Log in, or send a valid Authorization header.")
            target = request.full_path if request.query_string else request.path
            return redirect("/login?" + urlencode({"next": target}), 302)
        return problem(403, "Forbidden", f"Your role ({user.role}) does not allow this.")


__all__ = ["AccessControl", "routes_without_permission"]
