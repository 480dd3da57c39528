"""Fixtures of the browser tests: the real web server on a free loopback port, and Debian's Chromium driven by
Playwright.

The browser is the system's ``/usr/bin/chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it), never
one Playwright downloads. Without it the tests fail with that command, they do not skip: a browser test nobody runs
guards nothing. One browser per test session (starting Chromium costs about a second); a fresh context, so fresh
cookies and storage, per test.

The app runs on SQLite with the real clock: these tests watch pages the way users do, so sessions age in real
time (they are short). The fixtures of ``tests/ui/conftest.py`` (``make_web_app``, ``serve``, users per role) are
inherited; ``web_db_url`` is narrowed to SQLite here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("ZONDA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
#: Longest a browser test waits for one expectation (page loads, live updates) before it fails.
EXPECT_TIMEOUT_MS = 15_000


@pytest.fixture
def web_db_url(migrated_sqlite_url: str) -> str:
    """Browser tests run on SQLite: what they check is the page, not the database (tests/ui covers both)."""
    return migrated_sqlite_url


@pytest.fixture
def clock() -> Callable[[], float]:
    """Real time: the browser's requests age sessions as users' do."""
    return time.time


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"browser tests need Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(or point ZONDA_TEST_CHROMIUM at a Chromium binary)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class BrowserSite:
    """The app under test, served for real, and pages of a browser logged in to it."""

    def __init__(self, web: Any, url: str, browser: Any) -> None:
        """``web`` has the logins (``users`` by role, ``password``) and the ``engine``: a ``WebApp`` of
        ``tests/ui/conftest.py`` or a ``StandaloneInstallation``."""
        self.web = web
        self.url = url
        self._browser = browser
        self._contexts: list[Any] = []

    @property
    def engine(self) -> Any:
        return self.web.engine

    def new_page(self, *, color_scheme: str = "light") -> Any:
        context = self._browser.new_context(base_url=self.url, color_scheme=color_scheme)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        self._contexts.append(context)
        page = context.new_page()
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda message: _keep_error(page, message))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))  # type: ignore[attr-defined]
        return page

    def logged_in_page(self, role: str = "Admin", *, color_scheme: str = "light") -> Any:
        """A page of a fresh browser context, logged in as the test user of ``role``, showing the DAGs page."""
        page = self.new_page(color_scheme=color_scheme)
        page.goto("/login")
        page.fill("input[name=username]", self.web.users[role])
        page.fill("input[name=password]", self.web.password)
        page.click("button[type=submit]")
        page.wait_for_url("**/dags")
        return page

    def close(self) -> None:
        for context in self._contexts:
            context.close()


def _keep_error(page: Any, message: Any) -> None:
    """Keep the console's errors, each with the address it came from ("Failed to load resource" names none)."""
    if message.type == "error":
        where = (message.location or {}).get("url")
        page.console_errors.append(f"{message.text} ({where})" if where else message.text)


@pytest.fixture
def site(make_web_app: Callable[..., Any], serve: Callable[[Any], Any], browser: Any) -> Iterator[BrowserSite]:
    """The app on a real server with one user per role; open pages with ``site.logged_in_page(role)``."""
    web = make_web_app()
    server = serve(web.app)
    running = BrowserSite(web, server.url, browser)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``zonda standalone`` per test module (starting one costs seconds), stopped with SIGTERM after it."""
    from standalone_site import run_standalone

    yield from run_standalone(tmp_path_factory.mktemp("standalone_home"))


@pytest.fixture
def standalone_site(standalone: Any, browser: Any) -> Iterator[BrowserSite]:
    """The module's standalone installation, with fresh browser contexts for this test (log in as ``Admin``)."""
    running = BrowserSite(standalone, standalone.url, browser)
    try:
        yield running
    finally:
        running.close()
