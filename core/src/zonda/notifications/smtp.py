"""``SmtpNotifier``: mail through an ``smtp`` connection from any callback (Airflow's SMTP provider notifier).

``on_failure_callback=SmtpNotifier(to="ops@example.com", subject="{{ dag.dag_id }} failed")``. Subject and
text are templates; the default text names the DAG, the run, the task and try (when there is one) and the log
page, never a secret (the exception is masked like task logs are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from zonda.notifications.base import BaseNotifier

DEFAULT_SUBJECT = "Zonda: {{ dag.dag_id }} {{ dag_run.run_id if dag_run else '' }}"


class SmtpNotifier(BaseNotifier):
    """Sends one message per call through connection ``smtp_conn_id`` (default: ``[email] email_conn_id``)."""

    template_fields: ClassVar[Sequence[str]] = ("to", "subject", "text", "html", "from_email", "cc", "bcc")

    def __init__(
        self,
        *,
        to: str | Sequence[str],
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        from_email: str | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        smtp_conn_id: str | None = None,
    ) -> None:
        self.to = to
        self.subject = subject or DEFAULT_SUBJECT
        self.text = text
        self.html = html
        self.from_email = from_email
        self.cc = cc
        self.bcc = bcc
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Mapping[str, Any]) -> None:
        from zonda.hooks.smtp import SmtpHook

        settings = _settings()
        conn_id = self.smtp_conn_id or str(settings.get("email", "email_conn_id"))
        from_email = self.from_email or str(settings.get("email", "from_email")) or None
        SmtpHook(conn_id).send_email(
            self.to,
            self.subject,
            self.text if self.text is not None else default_text(context),
            html=self.html,
            from_email=from_email,
            cc=self.cc,
            bcc=self.bcc,
        )


def default_text(context: Mapping[str, Any]) -> str:
    """What happened, from the context: DAG, run, task and try when the callback is a task's, the error."""
    from zonda.masking import get_masker

    dag = context.get("dag")
    run = context.get("dag_run")
    ti = context.get("ti")
    lines = [f"DAG:       {getattr(dag, 'dag_id', '-')}", f"Run:       {getattr(run, 'run_id', '-')}"]
    if ti is not None and getattr(ti, "task_id", None):
        lines += [f"Task:      {ti.task_id}", f"Try:       {ti.try_number}", f"State:     {ti.state.value}"]
    for key in ("reason", "deadline"):
        if context.get(key):
            lines.append(f"{key.capitalize() + ':':<10} {context[key]}")
    exception = context.get("exception")
    if exception is not None:
        lines.append(f"Exception: {get_masker().redact_text(f'{type(exception).__name__}: {exception}')}")
    return "\n".join(lines) + "\n"


def _settings() -> Any:
    from zonda.config import load_settings

    return load_settings()
