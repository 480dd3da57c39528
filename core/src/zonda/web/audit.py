"""The audit trail of web requests: :func:`audit` records an action as done by the logged-in user.

Views call it after a change succeeds; the entry names the user (None for an anonymous request, as a failed
login), the action, its target, and details that include the client address and, for a request authenticated by
an API token, ``"auth": "token <id>"``. It writes through
:func:`zonda.operations.audit.record` with the app's engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


class AuditTrail:
    def init_app(self, app: Flask) -> None:
        self._engine = app.extensions["zonda"].engine
        app.extensions["zonda_audit"] = self

    def record(self, user: str | None, action: str, target: str | None, details: dict[str, Any] | None) -> None:
        from flask import request

        from zonda.operations.audit import record
        from zonda.web.api_auth import request_token_id

        extra: dict[str, Any] = {"address": request.remote_addr}
        token_id = request_token_id()
        if token_id is not None:
            # Not under a key named like a secret ("token_id"): the masker would hide the id, which is public.
            extra["auth"] = f"token {token_id}"
        record(self._engine, user, action, target, {**(details or {}), **extra})


def audit(
    action: str, target: str | None = None, details: dict[str, Any] | None = None, *, user: str | None = None
) -> None:
    """Record ``action`` on ``target``; ``user`` defaults to the logged-in user's name."""
    from flask import current_app

    from zonda.web.sessions import current_user

    if user is None:
        logged_in = current_user()
        user = None if logged_in is None else logged_in.username
    current_app.extensions["zonda_audit"].record(user, action, target, details)


__all__ = ["AuditTrail", "audit"]
