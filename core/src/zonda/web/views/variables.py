"""The ``variables`` blueprint: list (values of sensitive-looking keys ``***``), add, edit, delete, import, export.

A sensitive-looking key's value is never sent to the browser, in the list, the edit form or the export; its
edit form leaves the value empty and an empty value keeps the stored one. Needs ``MANAGE_VARIABLES`` (Op, Admin).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, render_template, request

from zonda.exceptions import ZondaException
from zonda.web.audit import audit
from zonda.web.context import web_context
from zonda.web.outcomes import ERROR, apply_change, done, refused
from zonda.web.permissions import Permission, requires

variable_views = Blueprint("variables", __name__)

LIST = "/variables"
#: Largest import file accepted (the app's request limit is larger; variables files are small).
MAX_IMPORT_BYTES = 1024 * 1024


def _rows() -> list[Any]:
    from zonda.operations.variables import list_variables

    context = web_context()
    return list_variables(context.settings, metastore=context.metastore())


@variable_views.get("/variables")
@requires(Permission.MANAGE_VARIABLES)
def variable_list() -> Any:
    return render_template("admin/variables.html", variables=_rows())


@variable_views.get("/variables/new")
@requires(Permission.MANAGE_VARIABLES)
def new_variable() -> Any:
    return render_template("admin/variable_form.html", variable=None, secret=False)


@variable_views.get("/variables/<key>/edit")
@requires(Permission.MANAGE_VARIABLES)
def edit_variable_page(key: str) -> Any:
    from zonda.exceptions import VariableNotFound
    from zonda.masking import is_sensitive_name

    found = [row for row in _rows() if row.key == key]
    if not found:
        return refused(VariableNotFound(f"no variable {key!r} in the metastore; add it on the Variables page"))
    return render_template("admin/variable_form.html", variable=found[0], secret=is_sensitive_name(key))


@variable_views.post("/variables")
@requires(Permission.MANAGE_VARIABLES)
def save_variable() -> Any:
    from zonda.operations.variables import edit_variable

    context = web_context()
    key = request.form.get("key", "").strip()
    value: str | None = request.form.get("value", "")
    if value == "" and request.form.get("keep_value") == "true":
        value = None
    description = request.form.get("description", "").strip() or None
    try:
        replaced = edit_variable(context.settings, key, value, description=description, metastore=context.metastore())
    except ZondaException as exc:
        return refused(exc)
    details = {"replaced": replaced, "value_changed": value is not None}
    audit("variable.edit" if replaced else "variable.create", key, details)
    return done(f"Variable {key} saved.", LIST)


@variable_views.post("/variables/<key>/delete")
@requires(Permission.MANAGE_VARIABLES)
def delete_variable(key: str) -> Any:
    from zonda.operations.variables import delete_variable as delete

    context = web_context()
    return apply_change(
        lambda: delete(context.settings, key, metastore=context.metastore()),
        lambda _: f"Variable {key} deleted.",
        LIST,
        audit_action="variable.delete",
        target=key,
    )


@variable_views.post("/variables/import")
@requires(Permission.MANAGE_VARIABLES)
def import_variables() -> Any:
    from zonda.operations.variables import import_variable_items, variable_items

    context = web_context()
    upload = request.files.get("file")
    action = request.form.get("existing", "overwrite")
    if action not in ("overwrite", "skip", "fail"):
        return done("Import: choose overwrite, skip or fail for existing keys.", LIST, category=ERROR)
    if upload is None or not upload.filename:
        return done("Import: choose a JSON file to import.", LIST, category=ERROR)
    source = upload.filename
    data = upload.read(MAX_IMPORT_BYTES + 1)
    try:
        if len(data) > MAX_IMPORT_BYTES:
            raise ZondaException(f"{source} is larger than {MAX_IMPORT_BYTES} bytes; import it with the CLI")
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ZondaException(f"{source} is not a UTF-8 JSON file ({exc})") from None
        result = import_variable_items(
            context.settings,
            variable_items(document, source),
            source=source,
            action_on_existing_key=action,  # type: ignore[arg-type]
            metastore=context.metastore(),
        )
    except ZondaException as exc:
        return done(f"Nothing was imported: {exc}", LIST, category=ERROR)
    audit("variable.import", source, {"added": result.added, "replaced": result.replaced, "skipped": result.skipped})
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    return done(f"Imported {source}: {result.added} added, {result.replaced} replaced{skipped}.", LIST)


@variable_views.get("/variables/export")
@requires(Permission.MANAGE_VARIABLES)
def export_variables() -> Any:
    from zonda.operations.variables import export_shown

    context = web_context()
    shown, left_out = export_shown(context.settings, metastore=context.metastore())
    audit("variable.export", None, {"exported": len(shown), "left_out": len(left_out)})
    response = Response(json.dumps(shown, indent=2, sort_keys=True) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="variables.json"'
    if left_out:
        response.headers["X-Zonda-Left-Out"] = str(len(left_out))
    return response
