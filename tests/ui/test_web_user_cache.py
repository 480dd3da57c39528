"""The session user cache (``[webserver] session_user_cache``): a user row is reused for the configured seconds
and read again after, a missing user is never remembered, and the cache stays bounded."""

from __future__ import annotations

from zonda.web.user_cache import MAX_USERS, UserCache


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting_loader(values: list[object]):
    calls = []

    def load() -> object:
        calls.append(1)
        return values[len(calls) - 1]

    return load, calls


def test_a_user_is_reused_within_the_window_and_read_again_after_it() -> None:
    ticks = Ticks()
    cache = UserCache(1.0, clock=ticks)
    load, calls = counting_loader(["first", "second"])
    assert cache.get((1, "cv"), load) == "first"
    ticks.now += 0.5
    assert cache.get((1, "cv"), load) == "first"
    assert len(calls) == 1
    ticks.now += 0.6
    assert cache.get((1, "cv"), load) == "second"
    assert len(calls) == 2


def test_another_password_version_is_another_entry() -> None:
    cache = UserCache(60.0, clock=Ticks())
    load, calls = counting_loader(["old", "new"])
    assert cache.get((1, "v1"), load) == "old"
    assert cache.get((1, "v2"), load) == "new"
    assert len(calls) == 2


def test_a_missing_user_is_not_remembered() -> None:
    cache = UserCache(60.0, clock=Ticks())
    load, calls = counting_loader([None, "back"])
    assert cache.get((7, "cv"), load) is None
    assert cache.get((7, "cv"), load) == "back"
    assert len(calls) == 2


def test_zero_seconds_reads_every_time() -> None:
    cache = UserCache(0.0, clock=Ticks())
    load, _calls = counting_loader(["a", "b"])
    assert [cache.get((1, "cv"), load), cache.get((1, "cv"), load)] == ["a", "b"]


def test_the_cache_is_bounded_dropping_the_oldest() -> None:
    cache = UserCache(60.0, clock=Ticks())
    for uid in range(MAX_USERS + 5):
        cache.get((uid, "cv"), lambda uid=uid: f"user {uid}")
    load, _calls = counting_loader(["read again"])
    assert cache.get((0, "cv"), load) == "read again"  # the oldest was dropped
    assert cache.get((MAX_USERS + 4, "cv"), lambda: "unused") == f"user {MAX_USERS + 4}"


def test_a_role_change_applies_once_the_window_has_passed(make_web_app) -> None:
    """With the cache on, the app reads the user through it: a new role shows after the window, not before."""
    from zonda.operations.users import set_role

    web = make_web_app({("webserver", "session_user_cache"): 3600.0})
    client = web.logged_in("Op")
    assert client.get("/api/v1/connections").status_code == 200
    set_role(web.engine, "op", "Viewer", actor="(test)")
    assert client.get("/api/v1/connections").status_code == 200  # the Op role read a moment ago
    web.app.extensions["zonda_sessions"].users.seconds = 0.0  # as if the window had passed
    assert client.get("/api/v1/connections").status_code == 403
