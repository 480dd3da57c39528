"""Serving the app with waitress, a pure-Python production WSGI server, until a stop event is set.

Why not ``waitress.serve``: it runs until the process gets a signal, and ``zonda standalone`` runs the web server
as one thread among its services, stopped by the group's shared event. :class:`WebServer` binds the socket when
it is made (so a port in use is a one-line error before anything else starts, and port 0 gets a free port whose
URL is known), then :meth:`WebServer.serve` runs waitress's event loop in short turns, checking the event
between turns, and closes every connection when it is set.
"""

from __future__ import annotations

import errno
import logging
import threading
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

#: Longest the loop waits for network activity before looking at the stop event again.
TURN_SECONDS = 0.25
#: Longest a stopping server waits for requests in progress.
SHUTDOWN_SECONDS = 5.0


class WebServer:
    def __init__(self, app: Flask, host: str, port: int, *, threads: int = 8) -> None:
        from waitress.server import create_server

        self._app = app
        try:
            self._server: Any = create_server(
                app,
                host=host,
                port=port,
                threads=max(1, threads),
                ident="zonda",
                clear_untrusted_proxy_headers=True,
            )
        except OSError as exc:
            reason = "the address is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ZondaException(
                f"the web server cannot listen on {host}:{port} ({reason}); choose another port with --port N "
                "or [webserver] port (ZONDA__WEBSERVER__PORT), or stop what uses it"
            ) from None

    @property
    def address(self) -> tuple[str, int]:
        server = self._server
        if hasattr(server, "effective_port"):
            return str(server.effective_host), int(server.effective_port)
        host, port = server.effective_listen[0][:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve(self, stop: threading.Event) -> None:
        """Answer requests until ``stop`` is set; then finish (or, after a few seconds, drop) those in progress."""
        from waitress import wasyncore

        from zonda.web.live.feed import close_change_feed

        server = self._server
        socket_map = server.map if hasattr(server, "map") else server._map
        log.info("web server listening on %s", self.url)
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=TURN_SECONDS, map=socket_map, use_poll=True, count=1)
        finally:
            close_change_feed(self._app)  # ends the live streams, which would otherwise hold their threads
            server.task_dispatcher.shutdown(timeout=SHUTDOWN_SECONDS)
            wasyncore.close_all(socket_map)
            log.info("web server stopped")


__all__ = ["WebServer"]
