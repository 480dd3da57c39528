"""Conditional reads: every successful API GET carries a strong ``ETag`` (a digest of its body), and a request
whose ``If-None-Match`` names it gets ``304 Not Modified`` without the body, so a client polling a run's state
transfers nothing while nothing changed. The answer is still computed (the digest needs it); the saving is the
transfer and the client's parsing. ``Cache-Control: no-cache`` makes caches ask again every time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Response


def conditional(response: Response) -> Response:
    from flask import request

    response.headers["Cache-Control"] = "private, no-cache"
    response.add_etag()
    return response.make_conditional(request)


__all__ = ["conditional"]
