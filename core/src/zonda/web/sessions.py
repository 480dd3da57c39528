"""Who is logged in: the session cookie, its flags, and its two timeouts.

The session is Flask's signed cookie (signed with the installation's secret key, so it cannot be forged or
altered), holding the user's id, a digest of their password hash, the login time and the time of the last
request. The user is read again from the metastore (at most once per ``[webserver] session_user_cache``
seconds, :mod:`zonda.web.user_cache`), and the session ends when:

- the user was deleted, or their password changed since the login (the digest differs);
- no request came for ``[webserver] session_idle_timeout`` seconds;
- the login is older than ``[webserver] session_max_age`` seconds, however active the session is.

The cookie is ``HttpOnly`` (scripts cannot read it), ``SameSite=Lax`` (other sites' forms do not send it) and
``Secure`` on requests that came over TLS, or always with ``[webserver] cookie_secure``. Logging in starts a
new session (no fixation); logging out clears it. A session's cookie stays valid until a timeout for whoever
copied it before logout: the cookie lives in the browser, not on the server.

The time of the last request is written back at most once every :data:`SEEN_AT_STEP` seconds, and the cookie is
sent only when it changed: a client polling many times a second neither re-signs nor re-receives it each time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from flask.sessions import SecureCookieSessionInterface

if TYPE_CHECKING:
    from flask import Flask

    from zonda.operations.users import UserRecord

COOKIE_NAME = "zonda_session"
_PASSIVE = "zonda_passive"
F = TypeVar("F", bound=Callable[..., Any])
#: Session key holding why the last session ended (shown, then dropped, by the login page).
ENDED = "ended"
#: The last-request time is renewed when it is this many seconds old (the idle timeout is minutes long).
SEEN_AT_STEP = 1.0


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with ``Secure`` decided per request (TLS or the config key)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import request

        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


class UserSessions:
    """The login extension: loads ``g.user`` before each request and ends expired sessions."""

    def init_app(self, app: Flask) -> None:
        from zonda.web.context import web_context
        from zonda.web.user_cache import UserCache

        settings = app.extensions["zonda"].settings
        self.users = UserCache(float(settings.get("webserver", "session_user_cache")))
        self.idle_timeout = float(settings.get("webserver", "session_idle_timeout"))
        self.max_age = float(settings.get("webserver", "session_max_age"))
        app.session_interface = _SessionInterface()
        app.config.update(
            SESSION_COOKIE_NAME=COOKIE_NAME,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=bool(settings.get("webserver", "cookie_secure")),
            PERMANENT_SESSION_LIFETIME=timedelta(seconds=self.max_age),
            SESSION_REFRESH_EACH_REQUEST=False,
        )
        app.extensions["zonda_sessions"] = self
        app.before_request(self._load_user)
        self._context = web_context

    def _load_user(self) -> None:
        from flask import g, session

        from zonda.web.api_auth import request_token_id

        if request_token_id() is not None:
            return  # an API token authenticated this request: the session is neither read nor renewed
        g.user = None
        if "uid" not in session:
            return
        now = self._context().clock()
        login_at = float(session.get("login_at", 0))
        seen_at = float(session.get("seen_at", 0))
        if now - login_at > self.max_age:
            self._end("your session reached its maximum age")
            return
        if now - seen_at > self.idle_timeout:
            self._end("your session ended after a time without activity")
            return
        from zonda.operations.users import find_user_by_id

        engine, uid = self._context().engine, int(session["uid"])
        user = self.users.get((uid, session.get("cv")), lambda: find_user_by_id(engine, uid))
        if user is None or user.credentials_version != session.get("cv"):
            self._end("your account changed")
            return
        g.user = user
        if now - seen_at >= SEEN_AT_STEP and not _is_passive():
            session["seen_at"] = now

    @staticmethod
    def _end(reason: str) -> None:
        """Drop the session, keeping only why it ended, for the login page to say once."""
        from flask import session

        session.clear()
        session[ENDED] = reason


def passive(view: F) -> F:
    """Mark a view whose requests are not the user's activity: a page's live-update stream reconnects by itself,
    and must not keep an unattended session alive past its idle timeout."""
    setattr(view, _PASSIVE, True)
    return view


def _is_passive() -> bool:
    from flask import current_app, request

    return bool(getattr(current_app.view_functions.get(request.endpoint or ""), _PASSIVE, False))


def login_user(user: UserRecord) -> None:
    """Start a new session for ``user`` (whatever the request's session held before is dropped)."""
    from flask import g, session

    from zonda.web.context import web_context

    now = web_context().clock()
    session.clear()
    session.permanent = True
    session.update(uid=user.id, cv=user.credentials_version, login_at=now, seen_at=now)
    g.user = user


def logout_user() -> None:
    from flask import g, session

    session.clear()
    g.user = None


def pop_end_reason() -> str | None:
    from flask import session

    reason = session.pop(ENDED, None)
    return reason if isinstance(reason, str) else None


def current_user() -> Any:
    """The logged-in :class:`~zonda.operations.users.UserRecord`, or None."""
    from flask import g

    return g.get("user")


__all__ = ["COOKIE_NAME", "UserSessions", "current_user", "login_user", "logout_user", "pop_end_reason"]
