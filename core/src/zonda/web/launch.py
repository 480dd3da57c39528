"""Making the app and binding its server from the settings: what ``zonda webserver`` and ``zonda standalone``
share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.web.server import WebServer


def start_web_server(settings: Settings, *, port: int | None = None, host: str | None = None) -> WebServer:
    """The app for ``settings``, bound to ``host:port`` (default ``[webserver] host`` and ``port``), not yet
    serving: call ``serve(stop)`` in the thread that should answer requests."""
    from zonda.web.app import create_app
    from zonda.web.server import WebServer

    app = create_app(settings)
    return WebServer(
        app,
        host if host is not None else str(settings.get("webserver", "host")),
        port if port is not None else int(settings.get("webserver", "port")),
        threads=int(settings.get("webserver", "threads")),
    )


__all__ = ["start_web_server"]
