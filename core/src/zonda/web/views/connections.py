"""The ``connections`` blueprint: list, add, edit, delete and test connections, with typed forms.

Secrets are write-only (see :mod:`zonda.operations.connection_forms`): no page or answer here carries a stored
password or secret extra. Reading and changing connections both need ``MANAGE_CONNECTIONS`` (Op and Admin), as
in Airflow, where a Viewer does not see connections at all.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from zonda.exceptions import ZondaException
from zonda.web.audit import audit
from zonda.web.context import web_context
from zonda.web.outcomes import ERROR, apply_change, done, refused
from zonda.web.permissions import Permission, requires

connection_views = Blueprint("connections", __name__)

LIST = "/connections"


def _type_choices() -> list[tuple[str, str]]:
    from zonda.operations.connection_forms import connection_types

    return [(name, info.display_name) for name, info in connection_types().items()] + [("generic", "Generic")]


def _form_page(form: Any, error: str | None = None, status: int = 200) -> Any:
    return render_template("admin/connection_form.html", form=form, types=_type_choices(), error=error), status


@connection_views.get("/connections")
@requires(Permission.MANAGE_CONNECTIONS)
def connection_list() -> Any:
    from zonda.operations.connection_forms import listing

    context = web_context()
    return render_template("admin/connections.html", connections=listing(context.metastore(), context.settings))


@connection_views.get("/connections/new")
@requires(Permission.MANAGE_CONNECTIONS)
def new_connection() -> Any:
    from zonda.operations.connection_forms import build_form

    choices = _type_choices()
    conn_type = request.args.get("conn_type") or choices[0][0]
    return _form_page(build_form(None, conn_type))


@connection_views.post("/connections/new")
@requires(Permission.MANAGE_CONNECTIONS)
def add_connection() -> Any:
    from zonda.operations.connection_forms import add_from_form, form_from_submission

    context = web_context()
    try:
        record = add_from_form(context.metastore(), context.settings, request.form)
    except ZondaException as exc:
        return _form_page(form_from_submission(request.form, exists=False), " ".join(str(exc).split()), 400)
    audit("connection.create", record.conn_id, {"conn_type": record.conn_type})
    return done(f"Connection {record.conn_id} added.", LIST)


@connection_views.get("/connections/<conn_id>/edit")
@requires(Permission.MANAGE_CONNECTIONS)
def edit_connection(conn_id: str) -> Any:
    from zonda.operations.connection_forms import edit_form

    context = web_context()
    try:
        form = edit_form(context.metastore(), context.settings, conn_id, request.args.get("conn_type"))
    except ZondaException as exc:
        return refused(exc)
    return _form_page(form)


@connection_views.post("/connections/<conn_id>/edit")
@requires(Permission.MANAGE_CONNECTIONS)
def save_connection(conn_id: str) -> Any:
    from zonda.exceptions import NotFound
    from zonda.operations.connection_forms import form_from_submission, update_from_form

    context = web_context()
    try:
        record = update_from_form(context.metastore(), context.settings, conn_id, request.form)
    except NotFound as exc:
        return refused(exc)
    except ZondaException as exc:
        form = form_from_submission({**request.form, "conn_id": conn_id}, exists=True)
        return _form_page(form, " ".join(str(exc).split()), 400)
    changed = sorted(k for k in ("password",) if request.form.get(k) or request.form.get(f"clear.{k}"))
    audit("connection.edit", conn_id, {"conn_type": record.conn_type, "secrets_changed": changed})
    return done(f"Connection {conn_id} saved.", LIST)


@connection_views.post("/connections/<conn_id>/delete")
@requires(Permission.MANAGE_CONNECTIONS)
def delete_connection(conn_id: str) -> Any:
    from zonda.operations.connections import delete_connection as delete

    context = web_context()
    return apply_change(
        lambda: delete(context.metastore(), context.settings, conn_id),
        lambda _: f"Connection {conn_id} deleted.",
        LIST,
        audit_action="connection.delete",
        target=conn_id,
    )


@connection_views.post("/connections/<conn_id>/test")
@requires(Permission.MANAGE_CONNECTIONS)
def test_connection(conn_id: str) -> Any:
    from zonda.exceptions import NotFound
    from zonda.operations.connection_forms import check_stored_connection

    context = web_context()
    try:
        result = check_stored_connection(context.metastore(), context.settings, conn_id)
    except NotFound as exc:
        return refused(exc)
    except ZondaException as exc:
        return done(f"Connection {conn_id} was not tested: {exc}", LIST, category=ERROR)
    audit("connection.test", conn_id, {"ok": result.ok})
    outcome = "works" if result.ok else "failed"
    return done(f"Connection {conn_id} {outcome}: {result.message}", LIST, category="notice" if result.ok else ERROR)
