"""The ``trigger`` blueprint: ``/dags/<dag_id>/trigger``, a form built from the DAG's params.

GET shows the form (``?reuse=N`` fills it with the N-th recent conf); POST checks every field against its schema,
shows the form again with one-line errors beside the fields, or creates the run, audits it and goes to the DAG.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, render_template, request

from zonda.exceptions import Conflict, ZondaException
from zonda.web.audit import audit
from zonda.web.context import web_context
from zonda.web.outcomes import done, refused
from zonda.web.permissions import Permission, requires

trigger_views = Blueprint("trigger", __name__)


@trigger_views.get("/dags/<dag_id>/trigger")
@requires(Permission.TRIGGER_DAG_RUNS)
def trigger_page(dag_id: str) -> Any:
    from zonda.operations.trigger_form import trigger_form

    choice = request.args.get("reuse", "")
    try:
        form = trigger_form(web_context().engine, dag_id, reuse=int(choice) if choice.isdigit() else None)
    except ZondaException as exc:
        return refused(exc)
    return render_template("admin/trigger.html", form=form, errors={}, run_id="")


@trigger_views.post("/dags/<dag_id>/trigger")
@requires(Permission.TRIGGER_DAG_RUNS)
def trigger_run(dag_id: str) -> Any:
    from zonda.operations.dag_runs import trigger
    from zonda.operations.trigger_form import CONF_FIELD, read_trigger_request, refill, trigger_form

    engine = web_context().engine
    run_id = request.form.get("run_id", "").strip() or None
    try:
        form = trigger_form(engine, dag_id)
        wanted = read_trigger_request(engine, dag_id, request.form)
    except ZondaException as exc:
        return refused(exc)
    if run_id is not None:
        _check_run_id(run_id, wanted.errors)
    if not wanted.errors:
        try:
            run = trigger(engine, dag_id, conf=wanted.conf, run_id=run_id)
        except Conflict as exc:
            wanted.errors["run_id"] = " ".join(str(exc).split())
        except ZondaException as exc:
            wanted.errors[CONF_FIELD] = " ".join(str(exc).split())
    if wanted.errors:
        page = render_template(
            "admin/trigger.html",
            form=refill(form, wanted.texts),
            errors=wanted.errors,
            run_id=run_id or "",
        )
        return page, 400
    audit("dag_run.trigger", dag_id, {"run_id": run.run_id, "conf_keys": sorted(run.conf)})
    return done(f"Triggered {dag_id}: run {run.run_id} is queued.", "/dags/" + quote(dag_id, safe=""))


def _check_run_id(run_id: str, errors: dict[str, str]) -> None:
    from zonda.identifiers import InvalidIdentifier, validate_run_id

    try:
        validate_run_id(run_id)
    except InvalidIdentifier as exc:
        errors["run_id"] = " ".join(str(exc).split())
