"""CSRF protection: every state-changing request (POST, PUT, PATCH, DELETE) carries the session's token.

The token is random, kept in the signed session, and sent back by forms as the field ``csrf_token`` (templates
call ``csrf_token()``) or by scripts as the header ``X-CSRF-Token``. A request without one is refused with 400,
one with a wrong token with 403; the view never runs, so nothing changes. GET never changes state, so it needs
none, and neither does a request authenticated by an API token (:mod:`zonda.web.api_auth`). ``SameSite=Lax``
cookies are a second line of defence, not the only one.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    """The current session's token, made on first use; empty for a request an API token authenticated (it needs
    none, and making one would write a session and set a cookie the token's client never asked for)."""
    from flask import session

    from zonda.web.api_auth import request_token_id

    if request_token_id() is not None:
        return ""
    token = session.get(FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[FIELD] = token
    return token


class CsrfProtection:
    def init_app(self, app: Flask) -> None:
        app.extensions["zonda_csrf"] = self
        app.jinja_env.globals["csrf_token"] = csrf_token
        app.before_request(self._check)

    @staticmethod
    def _check() -> Any:
        from flask import request, session

        from zonda.web.api_auth import request_token_id
        from zonda.web.responses import problem

        if request.method not in UNSAFE_METHODS or request.endpoint is None:
            return None
        if request_token_id() is not None:
            return None  # a Bearer request: no browser sends that header on another site's behalf
        sent = request.headers.get(HEADER) or request.form.get(FIELD)
        if not sent:
            return problem(400, "Bad request", "The CSRF token is missing; reload the page and try again.")
        expected = session.get(FIELD)
        if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
            return problem(403, "Forbidden", "The CSRF token is wrong or expired; reload the page and try again.")
        return None


__all__ = ["FIELD", "HEADER", "CsrfProtection", "csrf_token"]
