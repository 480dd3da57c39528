"""The ``users`` blueprint (Admin only): list, create, change role, reset password, delete.

The operations in :mod:`zonda.operations.users` write each change and its audit entry in one transaction, naming
the Admin who made it; they also refuse to lose the last Admin.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from zonda.web.context import web_context
from zonda.web.outcomes import apply_change
from zonda.web.permissions import Permission, requires
from zonda.web.sessions import current_user

user_views = Blueprint("users", __name__)

LIST = "/users"


def _actor() -> str:
    return current_user().username


@user_views.get("/users")
@requires(Permission.MANAGE_USERS)
def user_list() -> Any:
    from zonda.operations.users import ROLES, list_users

    return render_template("admin/users.html", users=list_users(web_context().engine), roles=ROLES)


@user_views.post("/users")
@requires(Permission.MANAGE_USERS)
def create_user() -> Any:
    from zonda.operations.users import create_user as create

    form = request.form
    return apply_change(
        lambda: create(
            web_context().engine,
            form.get("username", "").strip(),
            form.get("role", ""),
            form.get("password", ""),
            email=form.get("email", "").strip() or None,
            actor=_actor(),
        ),
        lambda user: f"User {user.username} created with role {user.role}.",
        LIST,
    )


@user_views.post("/users/<username>/role")
@requires(Permission.MANAGE_USERS)
def change_role(username: str) -> Any:
    from zonda.operations.users import set_role

    return apply_change(
        lambda: set_role(web_context().engine, username, request.form.get("role", ""), actor=_actor()),
        lambda user: f"User {user.username} is now {user.role}.",
        LIST,
    )


@user_views.post("/users/<username>/password")
@requires(Permission.MANAGE_USERS)
def reset_password(username: str) -> Any:
    from zonda.operations.users import set_password

    return apply_change(
        lambda: set_password(web_context().engine, username, request.form.get("password", ""), actor=_actor()),
        lambda _: f"The password of {username} was changed; their sessions ended.",
        LIST,
    )


@user_views.post("/users/<username>/delete")
@requires(Permission.MANAGE_USERS)
def delete_user(username: str) -> Any:
    from zonda.operations.users import delete_user as delete

    return apply_change(
        lambda: delete(web_context().engine, username, actor=_actor()),
        lambda _: f"User {username} deleted.",
        LIST,
    )
