"""``HttpWebhookNotifier``: POST a JSON payload to a webhook (chat, paging, incident tools) from any callback.

``on_failure_callback=HttpWebhookNotifier(http_conn_id="alerts", endpoint="/hooks/zonda")``. The request goes
through :class:`~zonda_http.hooks.HttpHook`, so the connection's base URL, token, headers, TLS verification,
timeout and retries apply as for ``HttpOperator``. ``endpoint``, ``json`` and ``headers`` are templates. Without
``json`` the payload describes what happened: DAG, run, logical date, task and try when there is one, state,
reason (run callbacks) or deadline, and the exception masked as task logs are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from zonda.notifications.base import BaseNotifier


class HttpWebhookNotifier(BaseNotifier):
    """One request per call; an error answer (4xx/5xx) raises, and the caller logs it."""

    template_fields: ClassVar[Sequence[str]] = ("endpoint", "json", "headers")

    def __init__(
        self,
        *,
        http_conn_id: str = "http_default",
        endpoint: str | None = None,
        method: str = "POST",
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.http_conn_id = http_conn_id
        self.endpoint = endpoint
        self.method = method
        self.json = json
        self.headers = dict(headers) if headers else None

    def notify(self, context: Mapping[str, Any]) -> None:
        from zonda_http.hooks import HttpHook

        hook = HttpHook(method=self.method, http_conn_id=self.http_conn_id)
        try:
            payload = self.json if self.json is not None else default_payload(context)
            hook.run(self.endpoint, json=payload, headers=self.headers)
        finally:
            hook.close()


def default_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """The event as JSON-ready values, taken from the callback's context."""
    from zonda.masking import get_masker

    dag, run, ti = context.get("dag"), context.get("dag_run"), context.get("ti")
    logical_date = getattr(run, "logical_date", None)
    payload: dict[str, Any] = {
        "dag_id": getattr(dag, "dag_id", None),
        "run_id": getattr(run, "run_id", None),
        "logical_date": logical_date.isoformat() if logical_date is not None else None,
    }
    if ti is not None and getattr(ti, "task_id", None):
        payload.update(task_id=ti.task_id, map_index=ti.map_index, try_number=ti.try_number, state=ti.state.value)
    for key in ("reason", "deadline"):
        if context.get(key) is not None:
            payload[key] = str(context[key])
    exception = context.get("exception")
    if exception is not None:
        payload["exception"] = get_masker().redact_text(f"{type(exception).__name__}: {exception}")
    return payload
