"""Fetching a try's log from the log server of the worker that ran it (see :mod:`.server`)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import quote

from zonda.exceptions import TaskLogNotFound
from zonda.runner.log_handlers import TaskLog, TaskLogKey
from zonda.worker_logs.paths import relative_log_path
from zonda.worker_logs.server import PREFIX
from zonda.worker_logs.signing import make_token, signing_key

if TYPE_CHECKING:
    from zonda.config import Settings

#: Seconds to wait for a worker's answer: a reader (a web page) must not hang on a worker that is gone.
TIMEOUT = 5.0


def fetch_log(settings: Settings, address: str, key: TaskLogKey) -> TaskLog:
    """The try's lines from the log server at ``address``; :class:`TaskLogNotFound` saying why when they cannot
    be had (the worker is gone, has no such file, or refuses the signature)."""
    if not address.startswith(("http://", "https://")):
        raise TaskLogNotFound(f"no log for {key.label}: the recorded log server {address!r} is not an http(s) URL")
    path = relative_log_path(key)
    token = make_token(signing_key(settings), path)
    request = urllib.request.Request(
        address.rstrip("/") + PREFIX + quote(path, safe="/=_.:+~-"), headers={"Authorization": f"Bearer {token}"}
    )
    try:
        # No proxy from the environment: workers are reached directly, inside the installation's network.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=TIMEOUT) as response:
            text = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        reason = exc.read(200).decode("utf-8", errors="replace").strip()
        raise TaskLogNotFound(
            f"no log for {key.label}: the worker's log server at {address} answered {exc.code} ({reason})"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TaskLogNotFound(
            f"no log for {key.label}: the worker's log server at {address} cannot be reached ({reason}); the "
            "worker may have stopped"
        ) from None
    return TaskLog(text.splitlines(), f"worker log server {address}")
