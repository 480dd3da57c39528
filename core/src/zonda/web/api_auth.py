"""``Authorization: Bearer <token>``: API tokens authenticate a single request, with a per-token rate limit.

Runs before the session extension: a request with a Bearer header is that token's user for this request only
(no session is read or written, no cookie is set), and it needs no CSRF token, since a browser never adds an
``Authorization`` header to a request another site makes it send. A header that is not a valid token is refused
with 401 whatever the path, rather than falling back to the cookie: a client that sent a token wants to know it
is wrong. The token itself is registered with this process's masker, so a log line quoting it shows ``***``.

Each token has a bucket of ``[api] rate_limit_per_minute`` requests, refilled evenly over the minute: a request
finding it empty gets 429 with ``Retry-After`` (whole seconds until one request is available again). The buckets
live in this process's memory (a restart refills them; several processes each count their own) and are bounded
(:data:`MAX_BUCKETS`, the stalest dropped first).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

SCHEME = "bearer"
MAX_BUCKETS = 10_000


class TokenBuckets:
    """In-process token buckets, one per key: ``capacity`` requests, refilled at ``capacity`` per ``period``."""

    def __init__(self, capacity: int, clock: Callable[[], float], period: float = 60.0) -> None:
        self.capacity = capacity
        self.rate = capacity / period if capacity > 0 else 0.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Spend one request of ``key``'s bucket: 0 when allowed, else the seconds until one is available."""
        if self.capacity <= 0:
            return 0
        now = self._clock()
        with self._lock:
            level, then = self._buckets.pop(key, (float(self.capacity), now))
            level = min(float(self.capacity), level + max(0.0, now - then) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                wait = 0
            else:
                self._buckets[key] = (level, now)
                wait = max(1, math.ceil((1.0 - level) / self.rate))
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait


class ApiTokenAuth:
    def init_app(self, app: Flask) -> None:
        context = app.extensions["zonda"]
        self._context = context
        self.buckets = TokenBuckets(int(context.settings.get("api", "rate_limit_per_minute")), context.clock)
        app.extensions["zonda_api_auth"] = self
        app.before_request(self._authenticate)

    def _authenticate(self) -> Any:
        from flask import g, request

        from zonda.masking import mask_secret
        from zonda.operations.api_tokens import TokenRejected, authenticate_token, touch_token
        from zonda.web.responses import problem

        g.api_token_id = None
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != SCHEME:
            return None  # Basic or another scheme: not ours; the session decides
        now = datetime.fromtimestamp(self._context.clock(), UTC)
        try:
            identity = authenticate_token(self._context.engine, token, now=now)
        except TokenRejected as exc:
            return problem(401, "Unauthorized", str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        mask_secret(token.strip())
        wait = self.buckets.take(identity.token_id)
        if wait:
            return problem(
                429,
                "Too many requests",
                f"token {identity.token_id} made more than {self.buckets.capacity} requests in a minute; "
                f"retry in {wait} s (or raise [api] rate_limit_per_minute)",
                {"Retry-After": str(wait)},
            )
        if identity.stale_last_used:
            touch_token(self._context.engine, identity.token_id, now=now)
        g.user = identity.user
        g.api_token_id = identity.token_id
        return None


def request_token_id() -> str | None:
    """The id of the API token that authenticated this request; None for a session (or anonymous) request."""
    from flask import g

    return g.get("api_token_id")


__all__ = ["MAX_BUCKETS", "ApiTokenAuth", "TokenBuckets", "request_token_id"]
