"""Per-user API tokens: create (shown once), list, revoke, and authenticate a request's ``Bearer`` token.

A token is ``zonda_<id>_<secret>``: ``id`` is 12 public hex characters (what ``list-tokens`` shows, the audit log
names and ``revoke-token`` takes), ``secret`` 256 random bits. The metastore keeps only the SHA-256 of the whole
token: a slow hash (argon2, as for passwords) protects guessable secrets, and a 256-bit random secret is not
guessable, so a fast hash is enough and keeps each API request cheap. The lookup goes by the id and the hashes
are compared in constant time, so response times tell nothing about a stored hash.

Every token expires (``[api] token_expiry_days`` by default, at most ``[api] token_max_expiry_days``); a revoked
token keeps its row, so the audit log's token ids stay explainable. Deleting the user deletes their tokens.
``last_used_at`` is written at most once per :data:`LAST_USED_GRANULARITY` per token, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update

from zonda.exceptions import NotFound, OperationError
from zonda.metastore import tables as t
from zonda.operations.audit import record_in
from zonda.operations.users import CLI_ACTOR, UserRecord, user_record
from zonda.timezone import utcnow

PREFIX = "zonda_"
MAX_NAME = 200
#: How stale ``last_used_at`` may get: the first request after this much time writes it again.
LAST_USED_GRANULARITY = timedelta(minutes=1)
_TOKEN = re.compile(r"zonda_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


class TokenRejected(OperationError):
    """The token is unknown, malformed, revoked or expired (HTTP 401); the message says which, in one line."""


@dataclass(frozen=True)
class ApiTokenRecord:
    id: str
    username: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``token`` is the only time its secret exists outside the caller's hands."""

    record: ApiTokenRecord
    token: str


@dataclass(frozen=True)
class TokenIdentity:
    """Who a valid token speaks for."""

    user: UserRecord
    token_id: str
    #: Whether the caller should call :func:`touch_token` (``last_used_at`` is older than the granularity).
    stale_last_used: bool


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _record(row: Any) -> ApiTokenRecord:
    return ApiTokenRecord(
        id=row.id,
        username=row.username,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def expiry_days(requested: float | None, *, default_days: float, max_days: float) -> float:
    """The lifetime to give a new token: ``requested`` (default ``default_days``), refused past ``max_days``."""
    days = default_days if requested is None else requested
    if days <= 0:
        raise OperationError(f"--expires-in must be a positive number of days, not {days:g}")
    if days > max_days:
        raise OperationError(
            f"--expires-in {days:g} is longer than the allowed {max_days:g} days; ask for fewer days "
            "(or raise [api] token_max_expiry_days)"
        )
    return days


def create_token(
    engine: Any,
    username: str,
    *,
    days: float,
    name: str | None = None,
    actor: str | None = CLI_ACTOR,
) -> NewToken:
    """A new token for ``username`` valid ``days`` days (validate ``days`` with :func:`expiry_days`)."""
    name = (name or "").strip() or "api"
    if len(name) > MAX_NAME or not name.isprintable():
        raise OperationError(f"the token name must be printable and at most {MAX_NAME} characters")
    token_id = secrets.token_hex(6)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    u, a = t.web_user, t.api_token
    with engine.begin() as conn:
        user_id = conn.execute(select(u.c.id).where(u.c.username == username)).scalar()
        if user_id is None:
            raise NotFound(f"no user {username!r}; see `zonda users list`")
        conn.execute(
            insert(a).values(
                id=token_id,
                user_id=user_id,
                name=name,
                token_hash=_digest(token),
                created_at=now,
                expires_at=now + timedelta(days=days),
            )
        )
        record_in(conn, actor, "token.create", username, {"id": token_id, "name": name})
        row = conn.execute(_listing().where(a.c.id == token_id)).one()
    return NewToken(_record(row), token)


def _listing() -> Any:
    a, u = t.api_token, t.web_user
    return select(a, u.c.username).join(u, u.c.id == a.c.user_id)


def list_tokens(engine: Any, username: str | None = None) -> list[ApiTokenRecord]:
    """Every token (or ``username``'s), newest first; never a secret or a hash."""
    a, u = t.api_token, t.web_user
    query = _listing().order_by(a.c.created_at.desc(), a.c.id)
    with engine.connect() as conn:
        if username is not None:
            if conn.execute(select(u.c.id).where(u.c.username == username)).first() is None:
                raise NotFound(f"no user {username!r}; see `zonda users list`")
            query = query.where(u.c.username == username)
        rows = conn.execute(query).all()
    return [_record(r) for r in rows]


def revoke_token(engine: Any, token_id: str, *, actor: str | None = CLI_ACTOR) -> ApiTokenRecord:
    """Stop ``token_id`` from authenticating, at once; revoking a revoked token changes nothing."""
    a = t.api_token
    with engine.begin() as conn:
        row = conn.execute(_listing().where(a.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no API token {token_id!r}; see `zonda users list-tokens`")
        if row.revoked_at is None:
            conn.execute(update(a).where(a.c.id == token_id).values(revoked_at=utcnow()))
            record_in(conn, actor, "token.revoke", row.username, {"id": token_id})
        row = conn.execute(_listing().where(a.c.id == token_id)).one()
    return _record(row)


def authenticate_token(engine: Any, token: str, *, now: datetime | None = None) -> TokenIdentity:
    """The user ``token`` belongs to, in one query; :class:`TokenRejected` naming why not."""
    found = _TOKEN.fullmatch(token.strip())
    if found is None:
        raise TokenRejected("the bearer token is malformed; create one with `zonda users create-token USERNAME`")
    token_id = found.group(1)
    a, u, g = t.api_token, t.web_user, t.dag_grant
    has_grants = exists(select(g.c.id).where(g.c.user_id == u.c.id)).label("has_grants")
    query = select(a.c.token_hash, a.c.expires_at, a.c.revoked_at, a.c.last_used_at, u, has_grants).join(
        u, u.c.id == a.c.user_id
    )
    with engine.connect() as conn:
        row = conn.execute(query.where(a.c.id == token_id)).first()
    # Compared even when no row matched, so an unknown id costs the same as a wrong secret.
    matches = hmac.compare_digest(_digest(token.strip()), row.token_hash if row is not None else "0" * 64)
    if row is None or not matches:
        raise TokenRejected("the bearer token is not valid; create one with `zonda users create-token USERNAME`")
    if row.revoked_at is not None:
        raise TokenRejected(f"the bearer token {token_id} was revoked; create a new one")
    now = now or utcnow()
    if row.expires_at <= now:
        raise TokenRejected(f"the bearer token {token_id} expired on {row.expires_at:%Y-%m-%d}; create a new one")
    stale = row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY
    return TokenIdentity(user=user_record(row), token_id=token_id, stale_last_used=stale)


def touch_token(engine: Any, token_id: str, *, now: datetime | None = None) -> None:
    """Record that ``token_id`` was used now, unless another request did within the granularity (one UPDATE that
    writes nothing then, so concurrent requests of one token do not all write)."""
    a = t.api_token
    now = now or utcnow()
    fresh = or_(a.c.last_used_at.is_(None), a.c.last_used_at <= now - LAST_USED_GRANULARITY)
    with engine.begin() as conn:
        conn.execute(update(a).where(and_(a.c.id == token_id, fresh)).values(last_used_at=now))


__all__ = [
    "LAST_USED_GRANULARITY",
    "ApiTokenRecord",
    "NewToken",
    "TokenIdentity",
    "TokenRejected",
    "authenticate_token",
    "create_token",
    "expiry_days",
    "list_tokens",
    "revoke_token",
    "touch_token",
]
