"""``/users`` (Admin): list, get, create, change role or password, delete. Password hashes never leave the
server; the last Admin cannot be removed or demoted (409)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from zonda.web.api.listing import CollectionInfo, ListQuery, collection, page_request
from zonda.web.api.models import ApiModel
from zonda.web.api.resources.common import engine
from zonda.web.api.routes import ApiRoute
from zonda.web.permissions import Permission

TAG = "User"


class User(ApiModel):
    username: str
    email: str | None
    role: str
    created_at: datetime | None
    last_login_at: datetime | None


class UserCollection(CollectionInfo):
    users: list[User]


class NewUser(ApiModel):
    username: str = Field(min_length=1, max_length=250)
    role: str = Field(min_length=1, max_length=50)
    password: str = Field(min_length=1, max_length=1000)
    email: str | None = Field(None, max_length=500)


class UserPatch(ApiModel):
    role: str | None = Field(None, min_length=1, max_length=50)
    password: str | None = Field(None, min_length=1, max_length=1000)


def _actor() -> str:
    from zonda.web.sessions import current_user

    return current_user().username


def list_users(query: ListQuery) -> Any:
    """Every user by name."""
    from zonda.operations.paging import page_of
    from zonda.operations.users import list_users as users

    rows = sorted(users(engine()), key=lambda u: u.username)
    return collection(page_of(rows, page_request(query), lambda u: u.username, "username"), "users")


def get_user(username: str) -> Any:
    """One user."""
    from zonda.operations.users import get_user as get

    return get(engine(), username)


def create_user(body: NewUser) -> Any:
    """Create a user (409 when the name is taken)."""
    from zonda.operations.users import create_user as create

    return create(engine(), body.username, body.role, body.password, email=body.email, actor=_actor())


def patch_user(username: str, body: UserPatch) -> Any:
    """Change a user's role or password (a new password ends their sessions)."""
    from zonda.operations.users import get_user as get
    from zonda.operations.users import set_password, set_role

    if body.role is not None:
        set_role(engine(), username, body.role, actor=_actor())
    if body.password is not None:
        set_password(engine(), username, body.password, actor=_actor())
    return get(engine(), username)


def delete_user(username: str) -> Any:
    """Delete a user."""
    from zonda.operations.users import delete_user as delete

    delete(engine(), username, actor=_actor())


def routes() -> list[ApiRoute]:
    manage = Permission.MANAGE_USERS
    one = "/users/{username}"
    return [
        ApiRoute("GET", "/users", list_users, manage, "List users", TAG, query=ListQuery, response=UserCollection),
        ApiRoute("POST", "/users", create_user, manage, "Create a user", TAG, body=NewUser, response=User),
        ApiRoute("GET", one, get_user, manage, "Get a user", TAG, response=User),
        ApiRoute("PATCH", one, patch_user, manage, "Change a user", TAG, body=UserPatch, response=User),
        ApiRoute("DELETE", one, delete_user, manage, "Delete a user", TAG, status=204),
    ]
