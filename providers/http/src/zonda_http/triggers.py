"""``HttpTrigger``: an HTTP request (or a poll until a non-allowlisted status) in the triggerer, on httpx.

The triggerer runs thousands of triggers on one event loop, so the request is a real async one
(``httpx.AsyncClient``), never a blocking call. The client is built from the same
:class:`~zonda_http.hooks.HttpSettings` as the synchronous :class:`~zonda_http.hooks.HttpHook`: the same base
URL, auth, headers, TLS settings (verification on; ``ca_bundle``), proxies, timeout and retry policy, and on a
redirect to another origin neither Authorization nor the connection's secret headers are sent.

The event payload is plain JSON (status code, reason, url, headers, text), never a pickle:
:func:`response_from_payload` rebuilds a ``requests.Response`` from it, so a ``response_check`` written for
the synchronous operator works unchanged on a deferred one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from zonda.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    import httpx
    import requests

    from zonda_http.hooks import HttpSettings

#: Redirects followed at most (requests' default is 30; a chain this long is already a loop).
MAX_REDIRECTS = 20
#: The ``extra_options`` a deferred request understands (the rest are requests-specific).
SUPPORTED_OPTIONS = frozenset({"timeout", "verify", "allow_redirects", "check_response"})


def response_payload(response: Any) -> dict[str, Any]:
    """The JSON-safe part of an ``httpx.Response`` or a ``requests.Response``."""
    reason = getattr(response, "reason_phrase", None)
    if reason is None:
        reason = getattr(response, "reason", "")
    return {
        "status_code": int(response.status_code),
        "reason": str(reason or ""),
        "url": str(response.url),
        "headers": {str(k): str(v) for k, v in response.headers.items()},
        "encoding": response.encoding,
        "text": response.text,
    }


def response_from_payload(payload: Mapping[str, Any]) -> requests.Response:
    """A ``requests.Response`` rebuilt from :func:`response_payload` (for ``response_check`` and friends).

    The body is the payload's text, re-encoded as UTF-8 (and the response's encoding set to match), so
    ``.text`` and ``.json()`` give exactly what the server sent whatever its charset was."""
    import requests
    from requests.structures import CaseInsensitiveDict

    response = requests.Response()
    response.status_code = int(payload["status_code"])
    response.reason = str(payload.get("reason") or "")
    response.url = str(payload.get("url") or "")
    response.headers = CaseInsensitiveDict(payload.get("headers") or {})
    response.encoding = "utf-8"
    response._content = str(payload.get("text") or "").encode("utf-8")
    return response


def _verify(settings: HttpSettings) -> Any:
    """httpx's ``verify``: False, or an SSL context (the system's CAs, or the configured ``ca_bundle``)."""
    import ssl

    if settings.verify is False:
        return False
    if isinstance(settings.verify, str):
        return ssl.create_default_context(cafile=settings.verify)
    return True


def build_async_client(settings: HttpSettings) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that behaves like :class:`~zonda_http.hooks.HttpHook`'s session: connection
    failures are retried by the transport (``settings.retries``), redirects are followed by the caller."""
    import httpx

    verify = _verify(settings)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for scheme, proxy in settings.proxies.items():
        pattern = scheme if "://" in scheme else f"{scheme}://"
        mounts[pattern] = httpx.AsyncHTTPTransport(proxy=proxy, verify=verify, retries=settings.retries)
    return httpx.AsyncClient(
        headers=settings.headers,
        timeout=settings.timeout,
        verify=verify,
        follow_redirects=False,
        transport=httpx.AsyncHTTPTransport(verify=verify, retries=settings.retries),
        mounts=mounts or None,
    )


def _strip_secrets(request: httpx.Request, secret_headers: frozenset[str]) -> None:
    from zonda.masking import is_sensitive_name

    lowered = {h.lower() for h in secret_headers}
    request.headers.pop("Authorization", None)
    for name in list(request.headers):
        if name.lower() in lowered or is_sensitive_name(name):
            del request.headers[name]


async def send(
    client: httpx.AsyncClient,
    settings: HttpSettings,
    method: str,
    url: str,
    *,
    params: Any = None,
    data: Any = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    follow_redirects: bool = True,
) -> httpx.Response:
    """One request as :meth:`HttpHook.run <zonda_http.hooks.HttpHook.run>` sends it: 429/502/503/504 retried
    (with backoff) for ``settings.retry_methods`` only, redirects followed with credentials kept on the origin.

    Redirects are followed here rather than by httpx so the hook's origin rule (host *and* port; an
    http -> https upgrade on default ports counts as the same origin) also covers the connection's secret
    headers, and basic auth is applied to the first request only."""
    from zonda_http.hooks import backoff_seconds, same_origin

    method = method.upper()
    content: dict[str, Any] = {}
    if isinstance(data, str | bytes):
        content["content"] = data
    elif data is not None:
        content["data"] = data
    if json is not None:
        content["json"] = json
    attempt = 0
    while True:
        request = client.build_request(
            method,
            url,
            params=params,
            headers=dict(headers or {}),
            timeout=timeout if timeout is not None else settings.timeout,
            **content,
        )
        auth: Any = settings.auth
        for _ in range(MAX_REDIRECTS + 1):
            response = await client.send(request, auth=auth)
            following = response.next_request if follow_redirects else None
            if following is None:
                break
            await response.aclose()
            if not same_origin(str(request.url), str(following.url)):
                _strip_secrets(following, settings.secret_headers)
                auth = None
            request = following
        else:
            raise TooManyRedirects(f"{method} {url}: more than {MAX_REDIRECTS} redirects")
        if attempt < settings.retries and settings.should_retry(method, response.status_code):
            attempt += 1
            await response.aclose()
            await asyncio.sleep(backoff_seconds(attempt, settings.backoff_factor))
            continue
        await response.aread()
        return response


class TooManyRedirects(Exception):
    """A redirect chain longer than :data:`MAX_REDIRECTS`."""


class HttpTrigger(BaseTrigger):
    """Send ``method endpoint`` on ``http_conn_id``. The event is ``{"status": "success", "response": {...}}``,
    or ``{"status": "error", "message": ...}`` (with ``"response"`` when the server answered with an error
    status) on a transport error or an error status.

    With ``poll_interval`` set, a status in ``response_error_codes_allowlist`` (default 404) means "not yet":
    the trigger waits ``poll_interval`` seconds and asks again, until another status comes back.
    ``initial_delay`` waits before the first request (a sensor's interval between two pokes)."""

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
        retry_methods: list[str] | None = None,
        initial_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.http_conn_id = http_conn_id
        self.method = method.upper()
        self.endpoint = endpoint
        self.headers = headers
        self.data = data
        self.json = json
        self.extra_options = extra_options
        self.poll_interval = poll_interval
        self.response_error_codes_allowlist = [str(c) for c in response_error_codes_allowlist]
        self.retry_methods = sorted(retry_methods) if retry_methods is not None else None
        self.initial_delay = float(initial_delay or 0.0)
        # Checked here, in the worker that defers, so a bad option fails the task at once with this message
        # rather than later in the triggerer.
        unsupported = set(self.extra_options or {}) - SUPPORTED_OPTIONS
        if unsupported:
            from zonda.exceptions import TriggerError

            raise TriggerError(
                f"HttpTrigger: extra_options {sorted(unsupported)} are not supported when deferred; "
                f"use {sorted(SUPPORTED_OPTIONS)}, or deferrable=False"
            )

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
                "retry_methods": self.retry_methods,
                "initial_delay": self.initial_delay,
            },
        )

    def _settings(self) -> HttpSettings:
        """Read the connection (secrets backends, environment or metastore: blocking, so in a thread)."""
        from zonda.hooks.base import BaseHook
        from zonda_http.hooks import resolve_settings

        options = self.extra_options or {}
        conn = BaseHook.get_connection(self.http_conn_id) if self.http_conn_id else None
        timeout = options.get("timeout")
        return resolve_settings(
            conn, timeout=float(timeout) if timeout is not None else None, retry_methods=self.retry_methods
        )

    def _request_kwargs(self) -> dict[str, Any]:
        options = dict(self.extra_options or {})
        options.pop("check_response", None)
        kwargs: dict[str, Any] = {"headers": self.headers, "json": self.json}
        if self.method in ("GET", "HEAD"):
            kwargs["params"] = self.data
        else:
            kwargs["data"] = self.data
        if "allow_redirects" in options:
            kwargs["follow_redirects"] = bool(options.pop("allow_redirects"))
        return kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from zonda.masking import get_masker
        from zonda_http.hooks import tls_failure_hint

        if self.initial_delay > 0:
            await asyncio.sleep(self.initial_delay)
        try:
            settings = await asyncio.to_thread(self._settings)
            kwargs = self._request_kwargs()
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": get_masker().redact_text(str(exc))})
            return
        url = settings.url(self.endpoint)
        verify_option = (self.extra_options or {}).get("verify")
        if verify_option is not None:
            settings = dataclasses.replace(settings, verify=verify_option)
        async with build_async_client(settings) as client:
            while True:
                try:
                    response = await send(client, settings, self.method, url, **kwargs)
                except httpx.TimeoutException as exc:
                    message = f"{self.method} {url} timed out after {settings.timeout}s: {exc!r}"
                    yield TriggerEvent({"status": "error", "message": get_masker().redact_text(message)})
                    return
                except (httpx.HTTPError, TooManyRedirects, OSError) as exc:
                    message = f"{self.method} {url}: request failed: {type(exc).__name__}: {exc}"
                    hint = tls_failure_hint(str(exc))
                    if hint:
                        message += f"; {hint}"
                    yield TriggerEvent({"status": "error", "message": get_masker().redact_text(message)})
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
                            "message": f"{response.status_code}:{response.reason_phrase}",
                            "response": payload,
                        }
                    )
                else:
                    yield TriggerEvent({"status": "success", "response": payload})
                return
