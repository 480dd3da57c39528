"""The web server: a Flask application made by :func:`create_app`, served by waitress.

Nothing here is imported by ``import zonda``: Flask and waitress load only when ``zonda webserver`` or
``zonda standalone`` starts (or a test builds an app). Module map, one concept each:

- :mod:`~zonda.web.app`: ``create_app(settings)``, the application factory; attaches the extensions below.
- :mod:`~zonda.web.secret_key`: the per-installation key signing sessions; refuses known and short keys.
- :mod:`~zonda.web.permissions`: roles, permissions, ``authorize(user, permission)`` and the ``requires``
  decorator every route carries.
- :mod:`~zonda.web.sessions`: who is logged in, cookie flags, idle and absolute timeouts.
- :mod:`~zonda.web.access`: applies each route's declared permission before the view runs (fails closed).
- :mod:`~zonda.web.csrf`: a CSRF token on every state-changing request.
- :mod:`~zonda.web.rate_limit`: failed logins per username and per client address.
- :mod:`~zonda.web.audit`: the audit trail of the current request's user.
- :mod:`~zonda.web.views`: the blueprints ``ui`` and ``api_v1``.
- :mod:`~zonda.web.server`: the production WSGI server (waitress) with a stop event.
- :mod:`~zonda.web.standalone_admin`: the ``admin`` user ``zonda standalone`` makes on first start.

The web server never imports DAG files and never writes SQL: every read and change goes through
:mod:`zonda.operations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from zonda.config import Settings


def create_app(settings: Settings, **options: Any) -> Flask:
    """See :func:`zonda.web.app.create_app` (imported here on call, so this package stays cheap to import)."""
    from zonda.web.app import create_app as factory

    return factory(settings, **options)


__all__ = ["create_app"]
