"""The REST compatibility header, matched to the server's major version.

elasticsearch-py N sends every request with ``Accept`` / ``Content-Type:
application/vnd.elasticsearch+json; compatible-with=N``. A server of another major version answers
``400 media_type_header_exception`` (Elasticsearch 8 refuses ``compatible-with=9``), and a newer server would
answer in the compatibility format of an older API than the one it speaks. So one installed client could serve
only one server generation.

:class:`CompatibleTransport` (and :class:`AsyncCompatibleTransport`) fix that below the client: before the first
request they ask the server for its version (``GET /`` with plain ``application/json``, which every version
accepts, and with the request's own credentials), then rewrite ``compatible-with=`` on every request to that
major version. The answer is kept for the life of the transport. When the probe itself is refused (an API key
without the ``monitor`` privilege gets 403 on ``GET /``), the header is left as the client made it and, should
the server then reject it, the supported version named in the server's error is used and the request sent once
more.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Mapping
from typing import Any

from elastic_transport import AsyncTransport, HttpHeaders, Transport

#: ``application/vnd.elasticsearch+json; compatible-with=9`` -> group 2 is the version.
_COMPAT_RE = re.compile(r"(application/vnd\.elasticsearch\+[\w.-]+;\s*compatible-with=)(\d+)", re.IGNORECASE)
#: Elasticsearch's refusal: "Accept version must be either version 8 or 7, but found 9. Accept=..."
_SUPPORTED_RE = re.compile(r"version must be either version (\d+)(?: or (\d+))?", re.IGNORECASE)
_MEDIA_HEADERS = ("accept", "content-type")


def major_version(info: Any) -> int | None:
    """The major version in a ``GET /`` body (``{"version": {"number": "8.15.3"}}``), or None."""
    if not isinstance(info, Mapping):
        return None
    version = info.get("version")
    number = version.get("number") if isinstance(version, Mapping) else None
    if not isinstance(number, str):
        return None
    head = number.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def with_compat_version(headers: Mapping[str, Any], major: int) -> HttpHeaders:
    """A copy of ``headers`` whose ``compatible-with=`` parameters say ``major``."""
    rewritten = HttpHeaders(headers)
    for name in _MEDIA_HEADERS:
        value = rewritten.get(name)
        if value and "compatible-with" in value:
            rewritten[name] = _COMPAT_RE.sub(lambda m: f"{m.group(1)}{major}", value)
    return rewritten


def probe_headers(headers: Mapping[str, Any]) -> HttpHeaders:
    """The request's headers (credentials included) with plain JSON media types, for ``GET /``."""
    probe = HttpHeaders(headers)
    probe.pop("content-type", None)
    probe["accept"] = "application/json"
    return probe


def supported_version_from_error(status: int, body: Any) -> int | None:
    """The highest version a ``400 media_type_header_exception`` says the server accepts, or None."""
    if status != 400:
        return None
    text = str(body)
    if "media_type_header_exception" not in text and "compatible" not in text:
        return None
    match = _SUPPORTED_RE.search(text)
    if not match:
        return None
    return max(int(group) for group in match.groups() if group)


def _headers(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _plain_media_types(headers: Mapping[str, Any]) -> bool:
    return not any("compatible-with" in str(headers.get(name) or "") for name in _MEDIA_HEADERS)


class CompatibleTransport(Transport):
    """A :class:`elastic_transport.Transport` whose compatibility header follows the server's major version.

    ``server_major`` is None until the first request has found it out (or set it by hand to skip the probe).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_major: int | None = None
        self._probed = False
        self._probe_lock = threading.Lock()

    def _probe(self, headers: Mapping[str, Any]) -> None:
        with self._probe_lock:
            if self._probed:
                return
            # Once only, also when refused: the refusal fallback below covers the rest without a request more.
            self._probed = True
            try:
                meta, body = super().perform_request("GET", "/", headers=probe_headers(headers))
            except BaseException:
                self._probed = False  # unreachable: ask again with the next request
                raise
            if 200 <= meta.status < 300:
                self.server_major = major_version(body)

    def perform_request(self, method: str, target: str, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = _headers(kwargs.pop("headers", None))
        if not self._probed and self.server_major is None and not _plain_media_types(headers):
            self._probe(headers)
        if self.server_major is not None:
            headers = with_compat_version(headers, self.server_major)
        response = super().perform_request(method, target, headers=headers, **kwargs)
        supported = supported_version_from_error(response.meta.status, response.body)
        if supported is not None and supported != self.server_major:
            self.server_major = supported
            response = super().perform_request(
                method, target, headers=with_compat_version(headers, supported), **kwargs
            )
        return response


class AsyncCompatibleTransport(AsyncTransport):
    """The asyncio twin of :class:`CompatibleTransport`, for ``AsyncElasticsearch`` (the trigger's client)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_major: int | None = None
        self._probed = False
        self._probe_lock: asyncio.Lock | None = None

    async def _probe(self, headers: Mapping[str, Any]) -> None:
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:
            if self._probed:
                return
            self._probed = True
            try:
                meta, body = await super().perform_request("GET", "/", headers=probe_headers(headers))
            except BaseException:
                self._probed = False
                raise
            if 200 <= meta.status < 300:
                self.server_major = major_version(body)

    async def perform_request(self, method: str, target: str, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = _headers(kwargs.pop("headers", None))
        if not self._probed and self.server_major is None and not _plain_media_types(headers):
            await self._probe(headers)
        if self.server_major is not None:
            headers = with_compat_version(headers, self.server_major)
        response = await super().perform_request(method, target, headers=headers, **kwargs)
        supported = supported_version_from_error(response.meta.status, response.body)
        if supported is not None and supported != self.server_major:
            self.server_major = supported
            response = await super().perform_request(
                method, target, headers=with_compat_version(headers, supported), **kwargs
            )
        return response
