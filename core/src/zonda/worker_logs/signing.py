"""Short-lived tokens for the worker log server: an HMAC over the file's path and an expiry time.

Why not a session or a long-lived key on the wire: a token names one log file and expires in at most
:data:`MAX_LIFETIME` seconds, so one that leaks (a proxy's access log) reads one file for under a minute. The
signing key is derived from ``[webserver] secret_key`` with a fixed label, so the session key itself never signs
anything else, and every machine of an installation that shares the secret key agrees on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.config import Settings

#: Longest a token may live (seconds); the server refuses any token that claims a later expiry.
MAX_LIFETIME = 60
#: Tokens are made with this lifetime: a request and its retry fit well within it.
DEFAULT_LIFETIME = 30
_LABEL = b"zonda worker log server v1"


class InvalidToken(Exception):
    """A token the log server refuses (tampered, expired, for another file, or not a token at all)."""


def signing_key(settings: Settings) -> bytes:
    """The key tokens are signed with, derived from the installation's secret key."""
    from zonda.web.secret_key import ensure_secret_key

    return hmac.new(ensure_secret_key(settings).encode(), _LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, path: str, *, lifetime: int = DEFAULT_LIFETIME, now: float | None = None) -> str:
    """A token allowing a GET of ``path`` (relative to the worker's log folder) until ``now + lifetime``."""
    expires = int((time.time() if now is None else now) + min(lifetime, MAX_LIFETIME))
    payload = _b64(json.dumps({"path": path, "exp": expires}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def check_token(key: bytes, token: str, path: str, *, now: float | None = None) -> None:
    """Return if ``token`` allows reading ``path`` now; :class:`InvalidToken` saying why not otherwise."""
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        raise InvalidToken("not a log server token")
    expected = _b64(hmac.new(key, payload.encode("ascii", "replace"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        raise InvalidToken("bad signature (is [webserver] secret_key the same on every machine?)")
    try:
        claims = json.loads(_unb64(payload))
        signed_path, expires = str(claims["path"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed token") from None
    current = time.time() if now is None else now
    if expires < current:
        raise InvalidToken("token expired")
    if expires > current + MAX_LIFETIME + 5:  # a few seconds of clock difference between machines
        raise InvalidToken(f"token lives longer than {MAX_LIFETIME} s")
    if signed_path != path:
        raise InvalidToken("token is for another file")
