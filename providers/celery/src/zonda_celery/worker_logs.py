"""The worker's log server: started by ``zonda celery worker`` before its pool forks, so that every task
process it starts records the server's address with its try (see :mod:`zonda.worker_logs`)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.worker_logs.server import RunningLogServer

log = logging.getLogger("zonda.celery")


def serve_worker_logs(settings: Settings) -> RunningLogServer:
    """Start the log server and hand its address to the task processes (through their environment)."""
    from zonda.worker_logs.server import ADDRESS_ENV, start_log_server

    if settings.source("webserver", "secret_key") == "default":
        log.warning(
            "[webserver] secret_key is not set: this worker signs with its own home's key, so only a reader on "
            "this machine can fetch its logs; set the same key on every machine of the installation"
        )
    running = start_log_server(settings)
    os.environ[ADDRESS_ENV] = running.address
    return running
