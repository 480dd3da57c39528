"""Web server users: create, list, delete, change role or password, and check a password.

Passwords are stored as argon2id hashes with OWASP's recommended minimum (19 MiB of memory, 2 iterations, 1 lane):
strong against offline guessing, and cheap enough (tens of milliseconds, 19 MiB) that a flood of logins to a
small server with 8 request threads cannot exhaust its memory, as argon2-cffi's 64 MiB default could. A hash
made with other parameters is replaced on the next successful login. Checking the password of a user that does not exist
costs the same hash as checking a real one, so the time a failed login takes does not tell which usernames
exist.

Roles, least to most: Viewer, User, Op, Admin (their permissions are in :mod:`zonda.web.permissions`). The last
Admin can be neither deleted nor demoted: an installation always keeps someone who can manage users.
Every change is written to the audit log in the same transaction, naming ``actor`` (``(cli)`` from the
command line).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, func, insert, select, update

from zonda.exceptions import Conflict, NotFound, OperationError
from zonda.metastore import tables as t
from zonda.operations.audit import record_in
from zonda.timezone import utcnow

if TYPE_CHECKING:
    from argon2 import PasswordHasher

ROLES = ("Viewer", "User", "Op", "Admin")
MAX_USERNAME = 256
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
CLI_ACTOR = "(cli)"


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    email: str | None
    role: str
    created_at: datetime | None
    last_login_at: datetime | None
    #: Changes whenever the password does (a digest of the hash, not the hash): sessions made before a password
    #: change carry the old value and are refused.
    credentials_version: str
    #: Whether per-DAG grants narrow this user to some DAGs (:mod:`zonda.operations.dag_grants`); loaded with the
    #: user in the same statement, so a user without grants costs no further query to authorize.
    has_grants: bool = False


@functools.cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def _version(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def user_record(row: Any) -> UserRecord:
    """A ``web_user`` row (with an optional ``has_grants`` column) as a record."""
    return UserRecord(
        id=row.id,
        username=row.username,
        email=row.email,
        role=row.role,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        credentials_version=_version(row.password_hash),
        has_grants=bool(row._mapping.get("has_grants", False)),
    )


def canonical_role(role: str) -> str:
    """``role`` spelled as Zonda spells it (``admin`` -> ``Admin``); a one-line error naming the roles if unknown."""
    for known in ROLES:
        if known.lower() == str(role).strip().lower():
            return known
    raise OperationError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")


def validate_username(username: str) -> str:
    if not username or not username.strip():
        raise OperationError("the username is empty; give one, e.g. --username alice")
    if len(username) > MAX_USERNAME:
        raise OperationError(f"the username is {len(username)} characters long; use at most {MAX_USERNAME}")
    if username != username.strip() or any(c.isspace() or not c.isprintable() for c in username):
        raise OperationError(f"the username {username!r} holds spaces or control characters; use letters, digits, ._-@")
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise OperationError(
            f"the password is shorter than {MIN_PASSWORD} characters; choose a longer one or use --random-password"
        )
    if len(password) > MAX_PASSWORD:
        raise OperationError(f"the password is longer than {MAX_PASSWORD} characters; choose a shorter one")
    return password


def generate_password() -> str:
    """A random password of 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def create_user(
    engine: Any,
    username: str,
    role: str,
    password: str,
    *,
    email: str | None = None,
    actor: str | None = CLI_ACTOR,
) -> UserRecord:
    """Store a new user; :class:`Conflict` when the username is taken."""
    validate_username(username)
    role = canonical_role(role)
    validate_password(password)
    password_hash = hash_password(password)
    u = t.web_user
    with engine.begin() as conn:
        if conn.execute(select(u.c.id).where(u.c.username == username)).first() is not None:
            raise Conflict(f"user {username!r} exists already; pick another username or delete it first")
        conn.execute(insert(u).values(username=username, email=email, role=role, password_hash=password_hash))
        record_in(conn, actor, "user.create", username, {"role": role})
        row = conn.execute(select(u).where(u.c.username == username)).one()
    return user_record(row)


def list_users(engine: Any) -> list[UserRecord]:
    u = t.web_user
    with engine.connect() as conn:
        rows = conn.execute(select(u).order_by(u.c.username)).all()
    return [user_record(r) for r in rows]


def get_user(engine: Any, username: str) -> UserRecord:
    u = t.web_user
    with engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user {username!r}; see `zonda users list`")
    return user_record(row)


def find_user_by_id(engine: Any, user_id: int) -> UserRecord | None:
    """The user with this id, or None (deleted meanwhile): what a session is checked against on every request."""
    u, g = t.web_user, t.dag_grant
    has_grants = exists(select(g.c.id).where(g.c.user_id == u.c.id)).label("has_grants")
    with engine.connect() as conn:
        row = conn.execute(select(u, has_grants).where(u.c.id == user_id)).first()
    return None if row is None else user_record(row)


def user_exists(engine: Any, username: str) -> bool:
    u = t.web_user
    with engine.connect() as conn:
        return conn.execute(select(u.c.id).where(u.c.username == username)).first() is not None


def _refuse_losing_last_admin(conn: Any, username: str, what: str) -> None:
    u = t.web_user
    admins = conn.execute(select(func.count()).select_from(u).where(u.c.role == "Admin")).scalar_one()
    if admins <= 1:
        raise Conflict(
            f"{username!r} is the last Admin; {what} would leave nobody to manage users; make another Admin first"
        )


def _require(conn: Any, username: str) -> Any:
    u = t.web_user
    row = conn.execute(select(u).where(u.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user {username!r}; see `zonda users list`")
    return row


def delete_user(engine: Any, username: str, *, actor: str | None = CLI_ACTOR) -> None:
    u = t.web_user
    with engine.begin() as conn:
        row = _require(conn, username)
        if row.role == "Admin":
            _refuse_losing_last_admin(conn, username, "deleting it")
        conn.execute(delete(u).where(u.c.id == row.id))
        record_in(conn, actor, "user.delete", username)


def set_role(engine: Any, username: str, role: str, *, actor: str | None = CLI_ACTOR) -> UserRecord:
    role = canonical_role(role)
    u = t.web_user
    with engine.begin() as conn:
        row = _require(conn, username)
        if row.role == "Admin" and role != "Admin":
            _refuse_losing_last_admin(conn, username, f"making it {role}")
        conn.execute(update(u).where(u.c.id == row.id).values(role=role))
        record_in(conn, actor, "user.set_role", username, {"from": row.role, "to": role})
        row = conn.execute(select(u).where(u.c.id == row.id)).one()
    return user_record(row)


def set_password(engine: Any, username: str, password: str, *, actor: str | None = CLI_ACTOR) -> UserRecord:
    """Replace the password; the user's existing sessions stop working (their credentials version changes)."""
    validate_password(password)
    password_hash = hash_password(password)
    u = t.web_user
    with engine.begin() as conn:
        row = _require(conn, username)
        conn.execute(update(u).where(u.c.id == row.id).values(password_hash=password_hash))
        record_in(conn, actor, "user.set_password", username)
        row = conn.execute(select(u).where(u.c.id == row.id)).one()
    return user_record(row)


def verify_password(engine: Any, username: str, password: str) -> UserRecord | None:
    """The user when ``password`` is theirs (their last login time updated), else None. An unknown username
    costs one hash too."""
    from argon2.exceptions import InvalidHashError, VerificationError

    u = t.web_user
    with engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.username == username)).first()
    hasher = _hasher()
    if row is None or len(password) > MAX_PASSWORD:
        with contextlib.suppress(VerificationError):
            hasher.verify(_dummy_hash(), password[:MAX_PASSWORD] or "x")
        return None
    try:
        hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    values: dict[str, Any] = {"last_login_at": utcnow()}
    if hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = hasher.hash(password)
    with engine.begin() as conn:
        conn.execute(update(u).where(u.c.id == row.id).values(**values))
        row = conn.execute(select(u).where(u.c.id == row.id)).one()
    return user_record(row)


__all__ = [
    "CLI_ACTOR",
    "ROLES",
    "UserRecord",
    "canonical_role",
    "create_user",
    "delete_user",
    "find_user_by_id",
    "generate_password",
    "get_user",
    "list_users",
    "set_password",
    "set_role",
    "user_exists",
    "user_record",
    "verify_password",
]
