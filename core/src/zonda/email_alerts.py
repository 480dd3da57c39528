"""E-mail alerts for ``email_on_failure`` / ``email_on_retry``: one message per failed or retried try.

Airflow users set ``email=`` with ``email_on_failure`` (on by default there whenever ``email`` is set) and
``email_on_retry`` and expect mail; accepting the arguments and sending nothing would be a silent trap. The task
process sends the message right after the try ends, through the ``[email] email_conn_id`` connection. Sending is
best effort: a failure is logged in the task log with the reason and the fix, and never changes the task's state.

The message names the DAG, task, run, map index and try, the exception's type and (masked) message, the host and
a link to the try's log page. It never holds connection passwords or other masked values.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.runner.instance import TaskInstance

log = logging.getLogger("zonda.task")

FAILED, RETRY = "failed", "up_for_retry"


def wants_email(operator: Any, state: str) -> bool:
    """Whether the operator asked for mail on this outcome (and names someone to send it to)."""
    if not getattr(operator, "email", None):
        return False
    if state == FAILED:
        return bool(getattr(operator, "email_on_failure", False))
    if state == RETRY:
        return bool(getattr(operator, "email_on_retry", False))
    return False


def log_url(settings: Settings | None, ti: TaskInstance) -> str:
    """The web page of this try's log (``[webserver] base_url`` + the task-instance page)."""
    base = str(settings.get("webserver", "base_url")) if settings is not None else "http://localhost:8080"
    path = "/dags/{}/runs/{}/tasks/{}".format(*(quote(part, safe="") for part in (ti.dag_id, ti.run_id, ti.task_id)))
    query = {"try_number": ti.try_number}
    if ti.map_index >= 0:
        query["map_index"] = ti.map_index
    return f"{base.rstrip('/')}{path}?{urlencode(query)}"


def compose(ti: TaskInstance, state: str, exception: BaseException | None, url: str) -> tuple[str, str]:
    """Subject and plain-text body of the alert (secrets masked)."""
    from zonda.masking import get_masker

    masker = get_masker()
    label = f"{ti.dag_id}.{ti.task_id}" + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
    outcome = "failed" if state == FAILED else "failed, will retry"
    subject = f"Zonda alert: {label} {outcome} (try {ti.try_number} of {ti.max_tries + 1})"
    error = masker.redact_text(f"{type(exception).__name__}: {exception}") if exception is not None else "(none)"
    lines = [
        f"Task {ti.task_id} of DAG {ti.dag_id} {outcome}.",
        "",
        f"DAG:       {ti.dag_id}",
        f"Task:      {ti.task_id}",
        f"Run:       {ti.run_id}",
        f"Map index: {ti.map_index}",
        f"Try:       {ti.try_number} of {ti.max_tries + 1}",
        f"Host:      {ti.hostname or '-'}",
        f"Exception: {error}",
        f"Log:       {url}",
    ]
    return subject, "\n".join(lines) + "\n"


def send_task_alert(
    settings: Settings | None, ti: TaskInstance, operator: Any, state: str, exception: BaseException | None
) -> bool:
    """Send the alert for this try when the operator asked for it; True when a message went out.

    Never raises: the task's outcome is already decided and recorded, and a mail server that is down must not
    change it. A failure is logged once, with the reason.
    """
    if not wants_email(operator, state):
        return False
    from zonda.hooks.smtp import SmtpHook, recipients

    conn_id = str(settings.get("email", "email_conn_id")) if settings is not None else "smtp_default"
    from_email = (str(settings.get("email", "from_email")) if settings is not None else "") or None
    to = recipients(operator.email)
    try:
        subject, text = compose(ti, state, exception, log_url(settings, ti))
        SmtpHook(conn_id).send_email(to, subject, text, from_email=from_email)
    except Exception as exc:
        log.error(
            "Could not send the %s e-mail alert to %s through connection %r: %s (the task's state is unchanged)",
            "failure" if state == FAILED else "retry",
            ", ".join(to),
            conn_id,
            exc,
        )
        return False
    log.info("Sent the %s e-mail alert to %s", "failure" if state == FAILED else "retry", ", ".join(to))
    return True
