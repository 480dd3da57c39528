"""Live updates over a real waitress server: changes arrive on ``GET /events``, filtered per tab; twenty tabs cost
at most one metastore query per second together; streams end with the server, by their lifetime, or are refused
past the cap; the poller starts with the first tab and stops when none is left.

State writes go through a second engine (another process, as far as the web server can tell), so the counted
statements are only those of the web server's own engine.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from zonda.metastore import tables as t
from zonda.metastore.db import Metastore
from zonda.operations.changes import Change
from zonda.timezone import utcnow
from zonda.web.live.feed import ChangeFeed, change_feed
from zonda.web.live.tracker import OVERLAP, ChangeTracker

SQLITE_ONLY = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
#: Longest a test waits for something that should come within a second or two (a bound for a broken feature,
#: not a timing: nothing asserts how fast it came).
PATIENCE = 30.0


class Stream:
    """One tab's ``/events`` stream, read by a thread: its lines, and its events in a queue."""

    def __init__(self, base_url: str, cookies: httpx.Cookies, query: str = "") -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.lines: list[str] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.error: BaseException | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._client = httpx.Client(base_url=base_url, cookies=cookies, timeout=httpx.Timeout(10, read=PATIENCE))
        self._thread = threading.Thread(target=self._read, args=(query,), daemon=True)
        self._thread.start()

    def _read(self, query: str) -> None:
        try:
            with self._client.stream("GET", "/events" + query) as response:
                self.status, self.headers = response.status_code, response.headers
                if response.status_code != 200:
                    response.read()
                for line in response.iter_lines():
                    self.lines.append(line)
                    if line == ": connected":
                        self.opened.set()
                    elif line.startswith("data: "):
                        self.events.put(json.loads(line[len("data: ") :]))
        except httpx.HTTPError as exc:  # kept for the test's assertion message
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()
            self._client.close()

    def wait_open(self) -> None:
        assert self.opened.wait(PATIENCE), "the stream did not open"
        assert self.status == 200 and not self.ended.is_set(), (self.status, self.lines, self.error)

    def until(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Every event up to and including the first one ``wanted``."""
        seen = []
        deadline = time.monotonic() + PATIENCE
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no wanted event among {seen}"
            try:
                seen.append(self.events.get(timeout=left))
            except queue.Empty:
                continue
            if wanted(seen[-1]):
                return seen

    def wait_end(self) -> None:
        assert self.ended.wait(PATIENCE), "the stream did not end"


def is_ti(task_id: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["kind"] == "ti" and e["task_id"] == task_id and e["state"] == state


@pytest.fixture
def writer(web_store: Metastore) -> Iterator[Any]:
    """A second engine on the same metastore: the scheduler and workers, as far as the web server sees."""
    other = Metastore(web_store.url)
    try:
        yield other.engine
    finally:
        other.dispose()


def add_run(engine: Any, dag_id: str, run_id: str, tasks: tuple[str, ...] = ()) -> None:
    with engine.begin() as conn:
        if conn.execute(t.dag.select().where(t.dag.c.dag_id == dag_id)).first() is None:
            conn.execute(t.dag.insert().values(dag_id=dag_id, is_paused=False, is_active=True, fileloc="/x.py"))
        pk = conn.execute(
            t.dag_run.insert().values(dag_id=dag_id, run_id=run_id, run_type="manual", state="queued")
        ).inserted_primary_key[0]
        for task_id in tasks:
            conn.execute(t.task_instance.insert().values(dag_run_id=pk, dag_id=dag_id, run_id=run_id, task_id=task_id))


def set_ti_state(engine: Any, dag_id: str, run_id: str, task_id: str, state: str, try_number: int = 1) -> None:
    ti = t.task_instance
    with engine.begin() as conn:
        conn.execute(
            update(ti)
            .where(ti.c.dag_id == dag_id, ti.c.run_id == run_id, ti.c.task_id == task_id)
            .values(state=state, try_number=try_number)
        )


def set_run_state(engine: Any, dag_id: str, run_id: str, state: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(t.dag_run).where(t.dag_run.c.dag_id == dag_id, t.dag_run.c.run_id == run_id).values(state=state)
        )


def logged_in_cookies(base_url: str, web: Any, role: str = "Viewer") -> httpx.Cookies:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        page = client.get("/login").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        form = {"username": web.users[role], "password": web.password, "csrf_token": token}
        assert client.post("/login", data=form).status_code == 303
        return client.cookies


# --- over a real server ------------------------------------------------------------------------------------------


@pytest.mark.database_dependent
def test_changes_arrive_filtered_per_tab(make_web_app, serve, writer) -> None:
    web = make_web_app()
    add_run(writer, "watched", "r1", ("t1",))
    add_run(writer, "watched", "r2", ("t2",))
    add_run(writer, "other", "r1", ("t1",))
    server = serve(web.app)
    cookies = logged_in_cookies(server.url, web)
    whole_dag = Stream(server.url, cookies, "?dag_id=watched")
    one_run = Stream(server.url, cookies, "?dag_id=watched&run_id=r2")
    runs_only = Stream(server.url, cookies, "?kind=run")
    for stream in (whole_dag, one_run, runs_only):
        stream.wait_open()
    assert whole_dag.headers is not None and whole_dag.headers["content-type"].startswith("text/event-stream")

    set_ti_state(writer, "other", "r1", "t1", "running")
    set_ti_state(writer, "watched", "r1", "t1", "running")
    set_run_state(writer, "watched", "r1", "running")
    set_ti_state(writer, "watched", "r2", "t2", "failed", try_number=2)

    got = whole_dag.until(is_ti("t2", "failed"))
    assert {(e["kind"], e["run_id"], e.get("task_id"), e["state"]) for e in got} >= {
        ("ti", "r1", "t1", "running"),
        ("run", "r1", None, "running"),
        ("ti", "r2", "t2", "failed"),
    }
    assert all(e["dag_id"] == "watched" for e in got)
    failed = got[-1]
    assert failed == {
        "kind": "ti",
        "dag_id": "watched",
        "run_id": "r2",
        "task_id": "t2",
        "map_index": -1,
        "state": "failed",
        "try_number": 2,
    }
    # Everything up to the last write has been fanned out: the one-run tab got only its run's change.
    assert one_run.until(is_ti("t2", "failed")) == [failed]
    assert runs_only.until(lambda e: True) == [
        {"kind": "run", "dag_id": "watched", "run_id": "r1", "task_id": None, "map_index": None}
        | {"state": "running", "try_number": None}
    ]
    # Heartbeats and re-reads of rows whose state did not change are no news.
    set_ti_state(writer, "watched", "r2", "t2", "failed", try_number=2)
    set_ti_state(writer, "watched", "r2", "t2", "up_for_retry", try_number=2)
    assert one_run.until(lambda e: True) == [{**failed, "state": "up_for_retry"}]


@SQLITE_ONLY
def test_twenty_tabs_cost_at_most_one_query_per_second(make_web_app, serve, writer) -> None:
    web = make_web_app()
    add_run(writer, "busy", "r1", tuple(f"t{i}" for i in range(5)))
    server = serve(web.app, threads=32)
    cookies = logged_in_cookies(server.url, web)
    tabs = [Stream(server.url, cookies, f"?dag_id=busy&run_id=r1&kind={'ti' if i % 2 else 'run'}") for i in range(20)]
    for tab in tabs:
        tab.wait_open()
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(web.engine, "before_cursor_execute", count)
    try:
        started = time.monotonic()
        for second in range(4):
            set_ti_state(writer, "busy", "r1", f"t{second}", "running")
            set_run_state(writer, "busy", "r1", f"state{second}")
            time.sleep(1)
        for tab in tabs[1::2]:
            tab.until(is_ti("t3", "running"))
        for tab in tabs[::2]:
            tab.until(lambda e: e["kind"] == "run" and e["state"] == "state3")
        elapsed = time.monotonic() - started
    finally:
        event.remove(web.engine, "before_cursor_execute", count)
    print(f"{len(statements)} statements in {elapsed:.1f} s for 20 tabs")
    assert 1 <= len(statements) <= elapsed + 1, statements
    assert change_feed(web.app).streams == 20


@SQLITE_ONLY
def test_streams_end_when_the_server_stops(make_web_app, serve) -> None:
    web = make_web_app()
    server = serve(web.app)
    stream = Stream(server.url, logged_in_cookies(server.url, web))
    stream.wait_open()
    assert change_feed(web.app).polling
    server.close()  # asserts the server thread ended within 10 s: the stream did not hold it
    stream.wait_end()
    assert stream.lines[0] == "retry: 2000" and stream.error is None
    assert change_feed(web.app).streams == 0 and not change_feed(web.app).polling


@SQLITE_ONLY
def test_streams_past_the_cap_are_refused_with_retry_after(make_web_app, serve) -> None:
    web = make_web_app({("webserver", "event_streams"): 1})
    server = serve(web.app)
    cookies = logged_in_cookies(server.url, web)
    first = Stream(server.url, cookies)
    first.wait_open()
    second = Stream(server.url, cookies)
    second.wait_end()
    assert second.status == 503 and second.headers is not None and second.headers["retry-after"] == "30"
    assert not first.ended.is_set()


@SQLITE_ONLY
def test_a_stream_has_a_bounded_lifetime_and_heartbeats(make_web_app, serve) -> None:
    web = make_web_app()
    ChangeFeed(stream_seconds=1.5, heartbeat_seconds=0.2).init_app(web.app)
    server = serve(web.app)
    stream = Stream(server.url, logged_in_cookies(server.url, web))
    stream.wait_end()
    assert stream.status == 200 and stream.error is None
    assert stream.lines[:2] == ["retry: 2000", ": connected"]
    assert ": keep-alive" in stream.lines


def test_the_cap_must_leave_threads_for_pages(make_web_app) -> None:
    from zonda.exceptions import ZondaException

    with pytest.raises(ZondaException, match=r"event_streams \(8\) must be below \[webserver\] threads \(8\)"):
        make_web_app({("webserver", "threads"): 8, ("webserver", "event_streams"): 8})


# --- the poller's life --------------------------------------------------------------------------------------------


def feed_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "zonda-change-feed"]


@SQLITE_ONLY
def test_the_poller_starts_with_the_first_tab_and_stops_when_idle(make_web_app) -> None:
    from zonda.web.live.subscriptions import ChangeFilter

    before = feed_threads()
    web = make_web_app()
    feed = ChangeFeed(poll_seconds=0.05, idle_seconds=0.2)
    feed.init_app(web.app)
    assert feed_threads() == before and not feed.polling  # nothing at app creation
    subscription = feed.subscribe(ChangeFilter())
    assert feed.polling
    started = [thread for thread in feed_threads() if thread not in before]
    assert len(started) == 1
    feed.unsubscribe(subscription)
    started[0].join(PATIENCE)
    assert not started[0].is_alive() and not feed.polling
    feed.subscribe(ChangeFilter())  # a new tab starts it again
    assert feed.polling
    feed.close()
    assert not feed.polling


# --- requests -------------------------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_bad_filters_are_one_line_errors(web) -> None:
    client = web.logged_in("Viewer")
    response = client.get("/events?kind=task")
    assert response.status_code == 400 and "unknown kind &#39;task&#39;; use one of dag, run, ti" in response.text
    response = client.get("/events?" + "&".join(f"run_id=r{i}" for i in range(101)))
    assert response.status_code == 400 and "run_id is given 101 times; watch at most 100" in response.text


@SQLITE_ONLY
def test_the_stream_does_not_keep_an_idle_session_alive(web) -> None:
    client = web.logged_in("Viewer")
    idle = float(web.settings.get("webserver", "session_idle_timeout"))
    web.clock.advance(idle - 5)
    assert client.get("/events?kind=x").status_code == 400  # let through: still logged in
    web.clock.advance(10)
    assert client.get("/dags").status_code == 302


@pytest.mark.database_dependent
def test_recent_runs_json_for_the_dags_page(web, writer) -> None:
    add_run(writer, "<script>alert(1)</script>", "r1")
    set_run_state(writer, "<script>alert(1)</script>", "r1", "success")
    add_run(writer, "plain", "r1")
    client = web.logged_in("Viewer")
    response = client.get("/dags/recent-runs.json?dag_id=plain&dag_id=%3Cscript%3Ealert(1)%3C/script%3E&dag_id=none")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json == {"<script>alert(1)</script>": ["success"], "none": [], "plain": ["queued"]}
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # JSON, never sniffed as a page
    page = client.get("/dags").text
    assert '<span class="state-dot" data-state="success" title="success" role="img" aria-label="success">' in page
    assert 'data-recent-runs="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert '<script src="/static/js/live.js" defer></script>' in page


# --- what is news ---------------------------------------------------------------------------------------------------


def change(at: Any, state: str = "running", try_number: int | None = 1, task_id: str = "t") -> Change:
    return Change("ti", "d", "r", task_id, -1, state, try_number, at)


def test_the_tracker_reports_each_state_once_and_rereads_an_overlap() -> None:
    start = utcnow()
    tracker = ChangeTracker(start)
    assert tracker.since == start  # what changed before the first tab came was loaded with its page
    old = change(start - timedelta(seconds=1), task_id="old")
    first = change(start + timedelta(seconds=5))
    assert tracker.news([old, first]) == [first]  # a row changed before anyone watched is not news
    assert tracker.since == first.updated_at - OVERLAP
    heartbeat = change(start + timedelta(seconds=6))
    assert tracker.news([first, heartbeat]) == []  # re-read in the overlap, then the same state again
    late = change(start + timedelta(seconds=4.5), "success", task_id="late")  # committed late
    retried = change(start + timedelta(seconds=7), "running", try_number=2)
    assert tracker.news([late, heartbeat, retried]) == [late, retried]
    assert tracker.news([change(start - timedelta(seconds=9), "failed", task_id="old")]) != []


def test_the_tracker_forgets_the_oldest_rows_first() -> None:
    start = utcnow()
    tracker = ChangeTracker(start, remembered=2)
    a, b, c = (change(start + timedelta(seconds=1), task_id=name) for name in "abc")
    assert tracker.news([a, b, c]) == [a, b, c]
    assert tracker.news([b, c]) == []
    assert tracker.news([a]) == [a]  # forgotten: reported again, which costs a refresh, never a missed change


def test_a_truncated_poll_moves_the_window_past_the_burst() -> None:
    start = utcnow()
    tracker = ChangeTracker(start)
    end_of_burst = start + timedelta(seconds=1)
    tracker.skip_to(end_of_burst)
    assert tracker.since == end_of_burst
