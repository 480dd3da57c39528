"""The HTTP server a remote worker runs beside its task processes, serving their logs to signed requests.

``GET /log/<path relative to the log folder>`` with ``Authorization: Bearer <token>`` (see :mod:`.signing`)
answers the file as text. Anything else is refused with a status and no detail that helps a guesser: 400 for a
path outside the folder, 403 for a missing, tampered or expired token, 404 for a log that is not here.

It runs as a daemon thread of the worker's main process, so it lives and dies with the worker, and binds before
the worker forks its pool, so the address (``[celery] worker_log_server_port``; 0 takes a free port, which lets
several workers share a host) is known to every task process through :data:`ADDRESS_ENV`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from zonda.exceptions import ZondaConfigError
from zonda.worker_logs.paths import BadLogPath, resolve_in_folder
from zonda.worker_logs.signing import InvalidToken, check_token, signing_key

if TYPE_CHECKING:
    from zonda.config import Settings

log = logging.getLogger("zonda.worker_logs")

#: Set by the worker for its task processes: the address they record with each try they start.
ADDRESS_ENV = "ZONDA_WORKER_LOG_SERVER"
#: Every log URL starts with this.
PREFIX = "/log/"
#: Largest log served (bytes); a larger one is cut to its last part, which is what a reader wants.
MAX_BYTES = 64 * 1024 * 1024
_WILDCARDS = ("", "0.0.0.0", "::")


def current_address() -> str | None:
    """The log server of the worker this task process runs under, or None (not under such a worker)."""
    return os.environ.get(ADDRESS_ENV) or None


@dataclass
class RunningLogServer:
    """A started server: its address as other machines reach it, and how to stop it."""

    address: str
    server: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _handler_class(folder: Path, key: bytes) -> type[BaseHTTPRequestHandler]:
    class LogRequest(BaseHTTPRequestHandler):
        server_version = "zonda-worker-logs"
        sys_version = ""

        def do_GET(self) -> None:
            raw = self.path.split("?", 1)[0]
            if not raw.startswith(PREFIX):
                self._refuse(404, "not found")
                return
            requested = unquote(raw[len(PREFIX) :])
            try:
                target = resolve_in_folder(folder, requested)
            except BadLogPath as exc:
                self._refuse(400, f"bad log path: {exc}")
                return
            auth = self.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            try:
                check_token(key, token, requested)
            except InvalidToken as exc:
                self._refuse(403, f"forbidden: {exc}")
                return
            try:
                with target.open("rb") as handle:
                    size = handle.seek(0, os.SEEK_END)
                    handle.seek(max(0, size - MAX_BYTES))
                    body = handle.read(MAX_BYTES)
            except (FileNotFoundError, IsADirectoryError):
                self._refuse(404, "no such log on this worker")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, status: int, message: str) -> None:
            body = (message + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("log server: " + format, *args)

    return LogRequest


def advertised_host(bind: str) -> str:
    """How other machines reach a server bound to ``bind``: the bind address itself, or this machine's host name
    when bound to every interface (no DNS lookup here: a slow resolver must not delay a worker's start)."""
    return socket.gethostname() if bind in _WILDCARDS else bind


def start_log_server(settings: Settings) -> RunningLogServer:
    """Serve ``settings.log_folder`` on ``[celery] worker_log_server_host``/``_port`` in a daemon thread."""
    bind = str(settings.get("celery", "worker_log_server_host"))
    port = int(settings.get("celery", "worker_log_server_port"))
    key = signing_key(settings)
    folder = Path(settings.log_folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        server = ThreadingHTTPServer((bind, port), _handler_class(folder, key))
    except OSError as exc:
        raise ZondaConfigError(
            f"the worker log server cannot listen on {bind}:{port} ({exc.strerror or exc}); set [celery] "
            "worker_log_server_port to a free port, or 0 to take any free port (several workers on one host)"
        ) from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="zonda-worker-log-server", daemon=True)
    thread.start()
    host = advertised_host(bind)
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{server.server_address[1]}"
    log.info("serving task logs of %s at %s (signed requests only)", folder, address)
    return RunningLogServer(address, server, thread)
