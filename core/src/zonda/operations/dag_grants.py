"""Per-DAG grants: narrowing a user to the DAGs with a tag, or whose id matches a glob, optionally with a lower role.

A user without grants sees every DAG with their role (the default; nothing changes for installations that never
use grants). A user with at least one grant sees only the DAGs some grant matches:

- ``tag`` grants match DAGs carrying that exact tag (``dag_tag`` rows);
- ``glob`` grants match DAG ids by shell glob, ``*`` and ``?`` (case-sensitive on every database).

A grant's ``role`` (None: the user's own role) is the role on the DAGs it matches; it never raises the user above
their own role. When several grants match one DAG the highest of their roles applies.

How callers use it:

- list queries add ``.where(visible_dags_clause(user, <their dag_id column>))``: one correlated ``EXISTS`` over
  ``dag_grant`` (and ``dag_tag``), so the database filters with its indexes whatever the number of DAGs, never a
  long ``IN`` list built in Python. For a user without grants the clause is ``true`` and costs nothing. The REST
  API's list endpoints (DAGs, runs, task instances, import errors...) pass their table's ``dag_id`` column;
- single-DAG requests ask :func:`dag_role` for the role on that DAG (None: the DAG is not visible, answer 404),
  which the web server's access control applies to every route with a ``<dag_id>`` in its path, before the view.

The user records these take come from :func:`zonda.operations.users.find_user_by_id` or a token's authentication,
which load ``has_grants`` in the same statement as the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, delete, exists, false, insert, literal, or_, select, true
from sqlalchemy.ext.compiler import compiles

from zonda.exceptions import Conflict, NotFound, OperationError
from zonda.metastore import tables as t
from zonda.operations.audit import record_in
from zonda.operations.users import CLI_ACTOR, ROLES, canonical_role

KINDS = ("tag", "glob")


@dataclass(frozen=True)
class DagGrant:
    id: int
    username: str
    kind: str
    pattern: str
    #: The role on matching DAGs; None: the user's own role.
    role: str | None


class _GlobMatch(ColumnElement[bool]):
    """``value`` matches the glob ``pattern`` (whose SQL LIKE form is ``like``), case-sensitively on every
    database: ``GLOB`` on SQLite (its ``LIKE`` ignores case), ``LIKE BINARY`` on MySQL/MariaDB, ``LIKE`` with
    a backslash escape elsewhere."""

    inherit_cache = True
    type = Boolean()

    def __init__(self, value: Any, pattern: Any, like: Any) -> None:
        self.value, self.pattern, self.like = value, pattern, like

    def get_children(self, **kwargs: Any) -> tuple[Any, ...]:
        return (self.value, self.pattern, self.like)

    @property
    def _from_objects(self) -> list[Any]:
        return [*self.value._from_objects, *self.pattern._from_objects, *self.like._from_objects]


@compiles(_GlobMatch)
def _glob_default(element: _GlobMatch, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.value.like(element.like, escape="\\"), **kw)


@compiles(_GlobMatch, "sqlite")
def _glob_sqlite(element: _GlobMatch, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.value, **kw)} GLOB {compiler.process(element.pattern, **kw)})"


@compiles(_GlobMatch, "mysql")
@compiles(_GlobMatch, "mariadb")
def _glob_mysql(element: _GlobMatch, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.value, **kw)} LIKE BINARY {compiler.process(element.like, **kw)})"


def glob_to_like(pattern: str) -> str:
    """The SQL ``LIKE`` form (escape character ``\\``) of a glob of ``*`` and ``?``."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _validate(kind: str, pattern: str) -> tuple[str, str]:
    kind = str(kind).strip().lower()
    if kind not in KINDS:
        raise OperationError(f"unknown grant kind {kind!r}; use tag or glob")
    if not pattern or not pattern.strip() or len(pattern) > t.ID_LENGTH or not pattern.isprintable():
        raise OperationError(f"the {kind} must be 1 to {t.ID_LENGTH} printable characters")
    if kind == "glob" and any(c in pattern for c in "[]\\"):
        raise OperationError(f"the glob {pattern!r} holds [, ] or \\; use only * and ? as wildcards")
    return kind, pattern


def add_grant(
    engine: Any, username: str, kind: str, pattern: str, *, role: str | None = None, actor: str | None = CLI_ACTOR
) -> DagGrant:
    """Let ``username`` see the DAGs with tag ``pattern`` (kind ``tag``) or whose id matches the glob ``pattern``
    (kind ``glob``), with ``role`` there; from the first grant on, the user sees no other DAG."""
    kind, pattern = _validate(kind, pattern)
    role = None if role is None else canonical_role(role)
    u, g = t.web_user, t.dag_grant
    with engine.begin() as conn:
        user_id = conn.execute(select(u.c.id).where(u.c.username == username)).scalar()
        if user_id is None:
            raise NotFound(f"no user {username!r}; see `zonda users list`")
        taken = select(g.c.id).where(g.c.user_id == user_id, g.c.kind == kind, g.c.pattern == pattern)
        if conn.execute(taken).first() is not None:
            raise Conflict(f"{username!r} has a {kind} grant {pattern!r} already; remove it first to change its role")
        conn.execute(
            insert(g).values(user_id=user_id, kind=kind, pattern=pattern, like_pattern=glob_to_like(pattern), role=role)
        )
        record_in(conn, actor, "grant.add", username, {"kind": kind, "pattern": pattern, "role": role})
        grant_id = conn.execute(taken).scalar_one()
    return DagGrant(grant_id, username, kind, pattern, role)


def list_grants(engine: Any, username: str | None = None) -> list[DagGrant]:
    u, g = t.web_user, t.dag_grant
    query = select(g, u.c.username).join(u, u.c.id == g.c.user_id).order_by(u.c.username, g.c.kind, g.c.pattern)
    if username is not None:
        query = query.where(u.c.username == username)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [DagGrant(r.id, r.username, r.kind, r.pattern, r.role) for r in rows]


def remove_grant(engine: Any, grant_id: int, *, actor: str | None = CLI_ACTOR) -> None:
    u, g = t.web_user, t.dag_grant
    with engine.begin() as conn:
        row = conn.execute(select(g, u.c.username).join(u, u.c.id == g.c.user_id).where(g.c.id == grant_id)).first()
        if row is None:
            raise NotFound(f"no grant {grant_id}; see `zonda users list-grants`")
        conn.execute(delete(g).where(g.c.id == grant_id))
        record_in(conn, actor, "grant.remove", row.username, {"kind": row.kind, "pattern": row.pattern})


def _matching_grants(user_id: int, dag_id: Any) -> Any:
    """``dag_grant`` rows of ``user_id`` that match the DAG id ``dag_id`` (a column, correlated, or a literal)."""
    g, tag = t.dag_grant, t.dag_tag
    tagged = exists(select(tag.c.dag_id).where(tag.c.dag_id == dag_id, tag.c.name == g.c.pattern).correlate_except(tag))
    return (
        select(g.c.role)
        .correlate_except(g)
        .where(
            g.c.user_id == user_id,
            or_(
                and_(g.c.kind == "glob", _GlobMatch(dag_id, g.c.pattern, g.c.like_pattern)),
                and_(g.c.kind == "tag", tagged),
            ),
        )
    )


def visible_dags_clause(user: Any, dag_id_column: Any = None) -> ColumnElement[bool]:
    """A WHERE clause keeping the rows whose ``dag_id_column`` (default ``dag.dag_id``) names a DAG ``user`` may
    see: ``true`` without grants, a correlated ``EXISTS`` with them, ``false`` for nobody (``user`` None)."""
    if user is None:
        return false()
    if not getattr(user, "has_grants", False):
        return true()
    column = t.dag.c.dag_id if dag_id_column is None else dag_id_column
    return exists(_matching_grants(user.id, column))


def visible_dag_ids(engine: Any, user: Any) -> frozenset[str] | None:
    """The ids of the stored DAGs ``user`` may see (one query), or None for a user without grants (every DAG, no
    query). For a filter held in memory over a while, like a live stream's: DAGs stored later are not in it."""
    if user is not None and not getattr(user, "has_grants", False):
        return None
    with engine.connect() as conn:
        return frozenset(conn.execute(select(t.dag.c.dag_id).where(visible_dags_clause(user))).scalars())


def dag_role(engine: Any, user: Any, dag_id: str) -> str | None:
    """``user``'s role on ``dag_id``: their own role without grants (no query), else the highest role of the
    grants matching it, never above their own (one query); None when no grant matches (the DAG is hidden)."""
    if user is None:
        return None
    if not getattr(user, "has_grants", False):
        return user.role
    with engine.connect() as conn:
        roles = list(conn.execute(_matching_grants(user.id, literal(dag_id, t.dag.c.dag_id.type))).scalars())
    if not roles:
        return None
    own = ROLES.index(user.role) if user.role in ROLES else -1
    best = max(ROLES.index(role) if role in ROLES else own for role in roles)
    return ROLES[min(best, own)] if own >= 0 else user.role


__all__ = [
    "KINDS",
    "DagGrant",
    "add_grant",
    "dag_role",
    "glob_to_like",
    "list_grants",
    "remove_grant",
    "visible_dag_ids",
    "visible_dags_clause",
]
