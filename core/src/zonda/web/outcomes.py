"""How a view answers after an operation: a one-line error as the right status, or a notice and a redirect.

Views of the admin pages share it, so bad input is always a 4xx naming the problem (never a 500) and a change is
always followed by a redirect (POST, then GET: reloading the page does not repeat the change).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Response

#: The flash category of a success notice and of a refusal shown on the next page.
NOTICE = "notice"
ERROR = "error"


def error_status(exc: Exception) -> int:
    """The HTTP status of an operation's refusal: 404 unknown, 409 clash, 400 anything else the user sent."""
    from zonda.exceptions import Conflict, NotFound, VariableNotFound

    if isinstance(exc, NotFound | VariableNotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


def refused(exc: Exception) -> Response:
    """The error page of a refused request, naming the problem in one line."""
    from zonda.web.responses import problem

    status = error_status(exc)
    titles = {404: "Not found", 409: "Conflict", 400: "Bad request"}
    return problem(status, titles[status], " ".join(str(exc).split()))


def done(message: str, target: str, *, category: str = NOTICE) -> Response:
    """Say ``message`` on the next page and go to ``target`` (303: the browser follows with a GET)."""
    from flask import flash, redirect

    flash(" ".join(message.split()), category)
    return redirect(target, 303)


def apply_change(
    operation: Callable[[], Any],
    success: Callable[[Any], str],
    back: str,
    *,
    audit_action: str | None = None,
    target: str | None = None,
) -> Response:
    """Run ``operation``: its refusal is the answer, else the change is audited (``audit_action``; None when the
    operation writes its own entry) and ``success(result)`` is said on ``back``."""
    from zonda.exceptions import ZondaException
    from zonda.web.audit import audit

    try:
        result = operation()
    except ZondaException as exc:
        return refused(exc)
    if audit_action is not None:
        audit(audit_action, target)
    return done(success(result), back)


__all__ = ["ERROR", "NOTICE", "apply_change", "done", "error_status", "refused"]
