"""The server-sent-events wire format of one tab's stream, and the stream itself.

A stream opens with ``retry:`` (how long the browser waits before reconnecting) so its first bytes, and the
headers, leave at once; then one ``data:`` line per change (JSON), a ``resync`` event when the tab must reload
everything, a comment line when nothing happened for a while, and it ends after the feed's ``stream_seconds``
(the browser reconnects: a bounded request, and the session is checked again) or when the server stops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.operations.changes import Change
    from zonda.web.live.feed import ChangeFeed
    from zonda.web.live.subscriptions import Subscription

#: Milliseconds the browser waits before reconnecting a stream that ended.
RETRY_MS = 2_000
RESYNC = {"kind": "resync"}


def encode(changes: list[Change], resync: bool) -> bytes:
    events = [RESYNC] if resync else [change.as_json() for change in changes]
    return "".join(f"data: {json.dumps(event, separators=(',', ':'))}\n\n" for event in events).encode("utf-8")


def event_stream(feed: ChangeFeed, subscription: Subscription) -> Iterator[bytes]:
    """The bytes of one stream; unsubscribes when it ends, however it ends (the WSGI server closes it when the
    client has gone)."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        deadline = time.monotonic() + feed.stream_seconds
        while (left := deadline - time.monotonic()) > 0:
            taken = subscription.take(min(feed.heartbeat_seconds, left))
            if taken is None:
                return
            changes, resync = taken
            yield encode(changes, resync) if changes or resync else b": keep-alive\n\n"
    finally:
        feed.unsubscribe(subscription)


__all__ = ["RETRY_MS", "encode", "event_stream"]
