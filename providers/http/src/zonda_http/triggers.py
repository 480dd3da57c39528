"""``HttpTrigger``: an HTTP request (or a poll until a non-allowlisted status) in the triggerer.

httpx is not a dependency: the synchronous :class:`~zonda_http.hooks.HttpHook` runs in ``asyncio.to_thread``,
so the event loop never blocks (the hook's timeout bounds each request). The event payload is plain JSON
(status code, headers, text), never a pickle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from zonda.triggers.base import BaseTrigger, TriggerEvent


def response_payload(response: Any) -> dict[str, Any]:
    """The JSON-safe part of a ``requests.Response``."""
    return {
        "status_code": int(response.status_code),
        "reason": str(response.reason or ""),
        "url": str(response.url),
        "headers": {str(k): str(v) for k, v in response.headers.items()},
        "encoding": response.encoding,
        "text": response.text,
    }


def response_from_payload(payload: dict[str, Any]) -> Any:
    """A ``requests.Response`` rebuilt from :func:`response_payload` (for ``response_check`` and friends)."""
    import requests
    from requests.structures import CaseInsensitiveDict

    response = requests.Response()
    response.status_code = payload["status_code"]
    response.reason = payload.get("reason", "")
    response.url = payload.get("url", "")
    response.headers = CaseInsensitiveDict(payload.get("headers") or {})
    response.encoding = payload.get("encoding") or "utf-8"
    response._content = payload.get("text", "").encode(response.encoding)
    return response


class HttpTrigger(BaseTrigger):
    """Send ``method endpoint`` on ``http_conn_id``. The event is ``{"status": "success", "response": {...}}``,
    or ``{"status": "error", "message": ...}`` on a transport error or an error status.

    With ``poll_interval`` set, a status in ``response_error_codes_allowlist`` (default 404) means "not yet":
    the trigger waits ``poll_interval`` seconds and asks again, until another status comes back."""

    def __init__(
        self,
        http_conn_id: str = "http_default",
        method: str = "POST",
        endpoint: str | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
        json: Any = None,
        extra_options: dict[str, Any] | None = None,
        poll_interval: float | None = None,
        response_error_codes_allowlist: list[str] | tuple[str, ...] = ("404",),
    ) -> None:
        super().__init__()
        self.http_conn_id = http_conn_id
        self.method = method
        self.endpoint = endpoint
        self.headers = headers
        self.data = data
        self.json = json
        self.extra_options = extra_options
        self.poll_interval = poll_interval
        self.response_error_codes_allowlist = [str(c) for c in response_error_codes_allowlist]

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "zonda_http.triggers.HttpTrigger",
            {
                "http_conn_id": self.http_conn_id,
                "method": self.method,
                "endpoint": self.endpoint,
                "headers": self.headers,
                "data": self.data,
                "json": self.json,
                "extra_options": self.extra_options,
                "poll_interval": self.poll_interval,
                "response_error_codes_allowlist": list(self.response_error_codes_allowlist),
            },
        )

    def _request(self, hook: Any) -> Any:
        return hook.run(
            self.endpoint,
            data=self.data,
            json=self.json,
            headers=self.headers,
            extra_options={**(self.extra_options or {}), "check_response": False},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from zonda_http.hooks import HttpHook

        hook = HttpHook(self.method, http_conn_id=self.http_conn_id)
        try:
            while True:
                try:
                    response = await asyncio.to_thread(self._request, hook)
                except Exception as exc:
                    from zonda.masking import get_masker

                    yield TriggerEvent({"status": "error", "message": get_masker().redact_text(str(exc))})
                    return
                code = str(response.status_code)
                if self.poll_interval is not None and code in self.response_error_codes_allowlist:
                    await asyncio.sleep(self.poll_interval)
                    continue
                payload = response_payload(response)
                if response.status_code >= 400:
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "message": f"{response.status_code}:{response.reason}",
                            "response": payload,
                        }
                    )
                else:
                    yield TriggerEvent({"status": "success", "response": payload})
                return
        finally:
            await asyncio.to_thread(hook.close)
