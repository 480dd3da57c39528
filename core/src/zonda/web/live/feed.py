"""The change feed: ONE poller thread per app asks the metastore once a second what changed, for every open tab.

Why one poller: each open tab holds a server-sent-events stream, and the issue bounds the load of any number of
tabs to one metastore query per second. The thread starts with the first subscriber (never at import time or
app creation), stops on its own after :data:`IDLE_SECONDS` without subscribers, and stops for good with
:meth:`ChangeFeed.close` (the web server calls it when it stops), which also ends every open stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException
from zonda.timezone import utcnow
from zonda.web.live.subscriptions import ChangeFilter, Subscription
from zonda.web.live.tracker import ChangeTracker

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "zonda_change_feed"
#: Seconds between two polls: the promised "at most one query per second".
POLL_SECONDS = 1.0
#: Seconds without any subscriber after which the poller thread ends (the next subscriber starts another).
IDLE_SECONDS = 30.0
#: Most rows one poll reads; more means a burst, and every tab is told to reload instead.
POLL_LIMIT = 5_000
#: Longest the closing feed waits for its poller (a poll in flight) to end.
CLOSE_SECONDS = 5.0


class TooManyStreams(ZondaException):
    """Every stream slot is taken: the tab should retry later (HTTP 503 with Retry-After)."""


class FeedClosed(ZondaException):
    """The web server is stopping."""


class ChangeFeed:
    def __init__(
        self,
        *,
        poll_seconds: float = POLL_SECONDS,
        stream_seconds: float = 300.0,
        heartbeat_seconds: float = 15.0,
        idle_seconds: float = IDLE_SECONDS,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.poll_seconds = poll_seconds
        #: How long one stream lasts before the browser reconnects (bounded request; a fresh session check).
        self.stream_seconds = stream_seconds
        #: Seconds between comment lines on a quiet stream (keeps proxies from closing it, finds gone clients).
        self.heartbeat_seconds = heartbeat_seconds
        self.idle_seconds = idle_seconds
        self.max_streams = 0
        self._now = now
        self._engine: Any = None
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def init_app(self, app: Flask) -> None:
        context = app.extensions["zonda"]
        threads = int(context.settings.get("webserver", "threads"))
        streams = int(context.settings.get("webserver", "event_streams"))
        if not 0 <= streams < threads:
            raise ZondaException(
                f"[webserver] event_streams ({streams}) must be below [webserver] threads ({threads}): each live "
                "stream holds a thread, and pages need some too; lower event_streams or raise threads"
            )
        self._engine = context.engine
        self.max_streams = streams
        app.extensions[EXTENSION] = self

    def subscribe(self, watching: ChangeFilter) -> Subscription:
        """A new subscription, starting the poller if none runs; :class:`TooManyStreams` when all are taken."""
        with self._lock:
            if self._closing.is_set():
                raise FeedClosed("the web server is stopping")
            if len(self._subscriptions) >= self.max_streams:
                raise TooManyStreams(f"all {self.max_streams} live streams are in use")
            subscription = Subscription(watching)
            self._subscriptions.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(ChangeTracker(self._now()),), name="zonda-change-feed", daemon=True
                )
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def polling(self) -> bool:
        """Whether the poller thread runs."""
        with self._lock:
            return self._thread is not None

    @property
    def streams(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def close(self) -> None:
        """Stop polling and end every stream (the web server is stopping)."""
        self._closing.set()
        with self._lock:
            subscriptions, thread = list(self._subscriptions), self._thread
        for subscription in subscriptions:
            subscription.close()
        if thread is not None:
            thread.join(CLOSE_SECONDS)

    def _run(self, tracker: ChangeTracker) -> None:
        idle_since: float | None = None
        while not self._closing.wait(self.poll_seconds):
            with self._lock:
                subscriptions = list(self._subscriptions)
                if not subscriptions:
                    idle_since = idle_since if idle_since is not None else time.monotonic()
                    if time.monotonic() - idle_since >= self.idle_seconds:
                        self._thread = None
                        return
                    continue
            idle_since = None
            self._poll(tracker, subscriptions)
        with self._lock:
            self._thread = None

    def _poll(self, tracker: ChangeTracker, subscriptions: list[Subscription]) -> None:
        from zonda.exceptions import MetastoreError
        from zonda.operations.changes import changes_since

        try:
            polled = changes_since(self._engine, tracker.since, limit=POLL_LIMIT)
        except MetastoreError as exc:  # an outage: the tabs keep their streams, the next poll tries again
            log.warning("live updates: %s; trying again in %.0f s", exc, self.poll_seconds)
            return
        news = tracker.news(polled)
        if len(polled) >= POLL_LIMIT:
            tracker.skip_to(polled[-1].updated_at)
            for subscription in subscriptions:
                subscription.resync()
            return
        for subscription in subscriptions:
            subscription.offer(news)


def change_feed(app: Flask) -> ChangeFeed:
    return app.extensions[EXTENSION]


def close_change_feed(app: Flask) -> None:
    """End the app's live streams and its poller, if it has a feed (the web server calls this as it stops)."""
    feed = app.extensions.get(EXTENSION)
    if feed is not None:
        feed.close()


__all__ = ["ChangeFeed", "FeedClosed", "TooManyStreams", "change_feed", "close_change_feed"]
