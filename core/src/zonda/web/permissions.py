"""Roles, permissions, and the one function that decides: :func:`authorize`.

Roles keep Airflow's meanings, each including everything of the roles before it:

- **Viewer** reads: DAGs, runs, task instances, logs, XComs, code, import errors, providers, plugins, the audit log.
- **User** also steers DAGs: pauses and unpauses them, deletes their history, triggers runs, clears task
  instances, marks states.
- **Op** also manages what DAGs use: connections, variables, pools; and reads the configuration.
- **Admin** also manages users.

Every route declares its permission next to its definition with :func:`requires` (``PUBLIC`` and
``AUTHENTICATED`` are permissions too); :mod:`zonda.web.access` applies it before the view runs and refuses a
route that declares none, and ``create_app`` refuses to build an app with such a route at all.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

ATTRIBUTE = "zonda_permission"

F = TypeVar("F", bound=Callable[..., Any])


class Permission(enum.Enum):
    #: Anyone, logged in or not: the login page, static files, /health.
    PUBLIC = "public"
    #: Any logged-in user, whatever the role: logging out, the API version.
    AUTHENTICATED = "authenticated"
    READ = "read"
    PAUSE_DAGS = "dags.pause"
    DELETE_DAGS = "dags.delete"
    TRIGGER_DAG_RUNS = "dag_runs.trigger"
    CLEAR_TASK_INSTANCES = "task_instances.clear"
    MARK_STATES = "states.mark"
    MANAGE_CONNECTIONS = "connections.manage"
    MANAGE_VARIABLES = "variables.manage"
    MANAGE_POOLS = "pools.manage"
    READ_CONFIG = "config.read"
    MANAGE_USERS = "users.manage"


_VIEWER = frozenset({Permission.READ})
_USER = _VIEWER | {
    Permission.PAUSE_DAGS,
    Permission.DELETE_DAGS,
    Permission.TRIGGER_DAG_RUNS,
    Permission.CLEAR_TASK_INSTANCES,
    Permission.MARK_STATES,
}
_OP = _USER | {
    Permission.MANAGE_CONNECTIONS,
    Permission.MANAGE_VARIABLES,
    Permission.MANAGE_POOLS,
    Permission.READ_CONFIG,
}
_ADMIN = _OP | {Permission.MANAGE_USERS}

#: What each role may do (the roles are those of :data:`zonda.operations.users.ROLES`).
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {"Viewer": _VIEWER, "User": _USER, "Op": _OP, "Admin": _ADMIN}


class HasRole(Protocol):
    role: str


def authorize(user: HasRole | None, permission: Permission) -> bool:
    """Whether ``user`` (None: nobody is logged in) may do what ``permission`` guards. An unknown role may do
    nothing beyond what any logged-in user may."""
    if permission is Permission.PUBLIC:
        return True
    if user is None:
        return False
    if permission is Permission.AUTHENTICATED:
        return True
    return permission in ROLE_PERMISSIONS.get(user.role, frozenset())


def requires(permission: Permission) -> Callable[[F], F]:
    """Declare the permission a view needs; put it right under the route decorator."""
    if not isinstance(permission, Permission):
        raise TypeError(f"requires() takes a Permission, not {permission!r}")

    def declare(view: F) -> F:
        setattr(view, ATTRIBUTE, permission)
        return view

    return declare


def declared_permission(view: Any) -> Permission | None:
    """The permission ``view`` declared with :func:`requires`, or None."""
    permission = getattr(view, ATTRIBUTE, None)
    return permission if isinstance(permission, Permission) else None


__all__ = ["ROLE_PERMISSIONS", "Permission", "authorize", "declared_permission", "requires"]
