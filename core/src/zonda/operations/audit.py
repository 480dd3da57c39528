"""The audit log: who changed what, when.

Every state change a person makes goes through :func:`record` (or :func:`record_in`, inside the operation's own
transaction, so the change and its entry commit together): logins that succeed or fail, user changes, and, from
the web UI and the REST API, triggers, clears, marks, pauses, connection and variable edits. ``details`` is a
small JSON object; it is passed through the masker before it is stored, so a caller that hands in a secret by
mistake still never writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, not_, or_, select

from zonda.metastore import tables as t

MAX_TARGET = 1000
MAX_ACTION = 100
MAX_USERNAME = 256
#: Actions about one DAG: their ``target`` is the DAG id, so per-DAG grants decide who may read the entry.
DAG_ACTION_PREFIXES = ("dag.", "dag_run.", "task_instances.", "task_instance.")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    #: Who did it; None for an anonymous request (a failed login) and ``(cli)`` for a command line change.
    username: str | None
    action: str
    target: str | None
    details: dict[str, Any]


def _details_text(details: dict[str, Any] | None) -> str | None:
    if not details:
        return None
    from zonda.masking import get_masker

    return json.dumps(get_masker().redact(details), default=str, sort_keys=True)


def record_in(
    conn: Any, user: str | None, action: str, target: str | None = None, details: dict[str, Any] | None = None
) -> None:
    """Add one entry within ``conn``'s transaction (it commits or rolls back with the change it describes)."""
    conn.execute(
        insert(t.audit_log).values(
            username=None if user is None else user[:MAX_USERNAME],
            action=action[:MAX_ACTION],
            target=None if target is None else target[:MAX_TARGET],
            details=_details_text(details),
        )
    )


def record(
    engine: Any, user: str | None, action: str, target: str | None = None, details: dict[str, Any] | None = None
) -> None:
    """Add one entry in a transaction of its own."""
    with engine.begin() as conn:
        record_in(conn, user, action, target, details)


def _decoded(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:  # written by hand or by an older version: shown as stored
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def list_entries(
    engine: Any,
    *,
    limit: int = 100,
    offset: int = 0,
    user: str | None = None,
    action: str | None = None,
    target: str | None = None,
    visible_to: Any = None,
) -> list[AuditEntry]:
    """The newest entries first, optionally only one user's, one action's or one target's; for ``visible_to`` (a
    user with per-DAG grants) without the entries about DAGs their grants hide (in the same statement)."""
    log = t.audit_log
    query = select(log).order_by(log.c.at.desc(), log.c.id.desc()).limit(max(1, min(limit, 10_000))).offset(offset)
    if getattr(visible_to, "has_grants", False):
        # Imported here: dag_grants records its changes through this module.
        from zonda.operations.dag_grants import visible_dags_clause

        about_a_dag = or_(*(log.c.action.startswith(prefix, autoescape=True) for prefix in DAG_ACTION_PREFIXES))
        query = query.where(or_(not_(about_a_dag), visible_dags_clause(visible_to, log.c.target)))
    if user is not None:
        query = query.where(log.c.username == user)
    if action is not None:
        query = query.where(log.c.action == action)
    if target is not None:
        query = query.where(log.c.target == target)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [AuditEntry(r.id, r.at, r.username, r.action, r.target, _decoded(r.details)) for r in rows]


__all__ = ["DAG_ACTION_PREFIXES", "AuditEntry", "list_entries", "record", "record_in"]
