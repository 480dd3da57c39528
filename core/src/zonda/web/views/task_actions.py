"""The ``task_actions`` blueprint: clear task instances, or mark them success or failed, with a preview.

Both endpoints take a form (``application/x-www-form-urlencoded``; the CSRF token as the ``csrf_token`` field or
the ``X-CSRF-Token`` header) and answer JSON. Without ``confirm=true`` nothing changes: the answer is the
preview, the instances the same request with ``confirm=true`` would change. The page shows the preview and
sends the same form again with ``confirm=true``; each change is then a compare-and-set on the state read, and
``changed_meanwhile`` counts the instances that moved in between (left alone).

``POST /dags/<dag_id>/task_instances/clear`` and ``POST /dags/<dag_id>/task_instances/mark``, fields:

- ``task_id`` (repeatable): the tasks; none (and no ``task_group``) means every task of the DAG.
- ``task_group``: every task in the group (ids starting with ``<group>.``), beside any ``task_id``.
- ``run_id`` (repeatable): the runs; none means every run.
- ``map_index`` (repeatable): only these map indexes.
- ``upstream``, ``downstream``, ``past``, ``future`` (``true``/``false``), and for clear ``only_failed``.
- for mark: ``state`` = ``success`` or ``failed``.
- ``confirm`` = ``true`` to apply.

So the grid's bulk menu sends: a whole run ``run_id=R``; a task across runs ``task_id=T``; a task group in a
run ``task_group=G&run_id=R``. The answer: ``{"action", "dry_run", "instances": [{"run_id", "task_id",
"map_index", "state"}], "runs", "changed", "changed_meanwhile", "dag_paused"}``; a bad form is 400 with
``{"title", "detail", "status"}``. A confirmed change is audited (``task_instances.clear`` / ``.mark``).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, make_response, request

from zonda.exceptions import NotFound, ZondaException
from zonda.web.audit import audit
from zonda.web.context import web_context
from zonda.web.permissions import Permission, requires

task_actions = Blueprint("task_actions", __name__)

_FLAGS = ("upstream", "downstream", "past", "future", "only_failed")
_TRUE = ("true", "on", "1", "yes")
_FALSE = ("false", "off", "0", "no", "")


def _error(status: int, detail: str) -> Any:
    title = "Not found" if status == 404 else "Bad request"
    return make_response(jsonify(title=title, detail=detail, status=status), status)


def _flag(name: str) -> bool:
    raw = request.form.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ZondaException(f"{name} must be true or false, not {raw[:40]!r}")


def _selection(dag_id: str, *, allow_only_failed: bool) -> Any:
    from zonda.operations.task_instances import Selection

    flags = {name: _flag(name) for name in _FLAGS}
    if flags["only_failed"] and not allow_only_failed:
        raise ZondaException("only_failed applies to clear, not to mark; leave it out")
    task_ids = [t for t in request.form.getlist("task_id") if t]
    group = request.form.get("task_group", "").strip()
    regex = None
    if group:
        regex = (
            "^" + re.escape(group + ".") + ("|^(" + "|".join(re.escape(t) for t in task_ids) + ")$" if task_ids else "")
        )
        task_ids = []
    run_ids = [r for r in request.form.getlist("run_id") if r]
    try:
        map_indexes = [int(m) for m in request.form.getlist("map_index") if m != ""]
    except ValueError:
        raise ZondaException("map_index must be a whole number (-1 for an unmapped task)") from None
    return Selection(
        dag_id,
        task_ids=task_ids or None,
        task_regex=regex,
        run_ids=run_ids or None,
        map_indexes=map_indexes or None,
        **flags,
    )


def _answer(action: str, outcome: Any) -> Any:
    return jsonify(
        action=action,
        dry_run=outcome.dry_run,
        instances=[
            {"run_id": r.run_id, "task_id": r.task_id, "map_index": r.map_index, "state": r.state.value}
            for r in outcome.instances
        ],
        runs=list(outcome.runs),
        changed=outcome.changed,
        changed_meanwhile=outcome.changed_meanwhile,
        dag_paused=outcome.dag_paused,
    )


def _audit_details(selection: Any, outcome: Any, **extra: Any) -> dict[str, Any]:
    return {
        "task_ids": sorted({r.task_id for r in outcome.instances}),
        "run_ids": sorted({r.run_id for r in outcome.instances}),
        "options": [name for name in _FLAGS if getattr(selection, name)],
        "changed": outcome.changed,
        **extra,
    }


@task_actions.post("/dags/<dag_id>/task_instances/clear")
@requires(Permission.CLEAR_TASK_INSTANCES)
def clear(dag_id: str) -> Any:
    from zonda.operations.task_instances import clear_task_instances

    try:
        confirm = _flag("confirm")
        selection = _selection(dag_id, allow_only_failed=True)
        outcome = clear_task_instances(web_context().engine, selection, dry_run=not confirm)
    except NotFound as exc:
        return _error(404, str(exc))
    except ZondaException as exc:
        return _error(400, str(exc))
    if confirm:
        audit("task_instances.clear", dag_id, _audit_details(selection, outcome))
    return _answer("clear", outcome)


@task_actions.post("/dags/<dag_id>/task_instances/mark")
@requires(Permission.MARK_STATES)
def mark(dag_id: str) -> Any:
    from zonda.operations.task_instances import mark_task_instances

    state = request.form.get("state", "")
    if state not in ("success", "failed"):
        return _error(400, f"state must be success or failed, not {state[:40]!r}")
    try:
        confirm = _flag("confirm")
        selection = _selection(dag_id, allow_only_failed=False)
        outcome = mark_task_instances(web_context().engine, selection, state, dry_run=not confirm)
    except NotFound as exc:
        return _error(404, str(exc))
    except ZondaException as exc:
        return _error(400, str(exc))
    if confirm:
        audit("task_instances.mark", dag_id, _audit_details(selection, outcome, state=state))
    return _answer("mark", outcome)
