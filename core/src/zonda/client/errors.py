"""The one exception the client raises: the server's ``{"title", "detail", "status"}``, or why no answer came."""

from __future__ import annotations

from zonda.exceptions import ZondaException


class ZondaApiError(ZondaException):
    """A request failed. ``status`` is the HTTP status (None when no answer came: refused connection, TLS
    failure, timeout); ``title`` and ``detail`` are the server's problem fields (or the best that can be said
    without them); ``retry_after`` is the server's ``Retry-After`` in seconds for 429 and 503, else None."""

    def __init__(self, status: int | None, title: str, detail: str, *, retry_after: float | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after = retry_after
        prefix = f"HTTP {status} {title}" if status is not None else title
        super().__init__(f"{prefix}: {detail}")


__all__ = ["ZondaApiError"]
