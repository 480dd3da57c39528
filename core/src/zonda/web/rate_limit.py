"""Failed logins, counted per username and per client address: past the limit, login answers 429.

After ``[webserver] login_max_failures`` failures within ``[webserver] login_failure_window`` seconds for one
username, or from one client address, further attempts for that username (or from that address) are refused
with 429 and ``Retry-After`` until the oldest counted failure leaves the window, without checking the password.
Counting per username stops guessing one account from many addresses; per address stops trying many accounts
from one. A successful login clears its username's count (not the address's).

The counts live in this process's memory: a restart forgets them, and several web server processes each count
their own. The client address is the TCP peer (a proxy in front of Zonda makes every client one address).
Memory is bounded: at most :data:`MAX_KEYS` keys, the stalest dropped first.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

MAX_KEYS = 10_000


class LoginRateLimiter:
    def __init__(self) -> None:
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_failures = 5
        self.window = 60.0
        self._clock: Callable[[], float] = lambda: 0.0

    def init_app(self, app: Flask) -> None:
        context = app.extensions["zonda"]
        self.max_failures = max(1, int(context.settings.get("webserver", "login_max_failures")))
        self.window = float(context.settings.get("webserver", "login_failure_window"))
        self._clock = context.clock
        app.extensions["zonda_login_limiter"] = self

    @staticmethod
    def _keys(username: str, address: str | None) -> list[str]:
        return [f"user:{username.lower()}", f"addr:{address or '?'}"]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, username: str, address: str | None) -> int:
        """Seconds to wait before this username may be tried from this address again; 0 when allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, address):
                times = self._recent(key, now)
                if len(times) >= self.max_failures:
                    wait = max(wait, times[-self.max_failures] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(username, address):
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)


__all__ = ["MAX_KEYS", "LoginRateLimiter"]
