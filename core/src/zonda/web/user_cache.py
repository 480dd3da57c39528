"""A short-lived memory of the users sessions belong to, so a client polling the API at a hundred requests a
second does not read its user row (role, password version, grants) a hundred times.

Why it is safe: an entry lives ``[webserver] session_user_cache`` seconds (default 1), measured on the monotonic
clock, so a password change, a deletion, a new role or new per-DAG grants apply within that time, whichever
process made them. It is keyed by user id and the session's password version, holds at most
:data:`MAX_USERS` entries (the oldest dropped first) and belongs to one app, never to the module.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_USERS = 1_000


class UserCache:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: OrderedDict[tuple[int, Any], tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, Any], load: Callable[[], Any]) -> Any:
        """The value cached under ``key`` if it is fresh, else ``load()`` (cached unless it is None)."""
        if self.seconds <= 0:
            return load()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.seconds:
            return entry[1]
        value = load()
        with self._lock:
            if value is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = (now, value)
                self._entries.move_to_end(key)
                while len(self._entries) > MAX_USERS:
                    self._entries.popitem(last=False)
        return value


__all__ = ["MAX_USERS", "UserCache"]
