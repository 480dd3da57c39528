"""Fixtures of the web server tests: a migrated metastore (SQLite; PostgreSQL too for ``database_dependent``
tests), an app with a clock the test moves, one user per role, and a logged-in test client.

Passwords are hashed with argon2id at its cheapest parameters here (:func:`_cheap_password_hashes`): the production
cost (19 MiB, 2 passes) is there to slow down guessing, and paid for each of the four users and each login of
every test it made the web tests minutes slower. A test marked ``production_password_hasher`` keeps the production
hasher; ``test_web_users.py`` checks its parameters, and that a login replaces a hash made with other ones.
Processes the tests start (``zonda webserver``, ``zonda standalone``) always use the production hasher.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from zonda.config import Settings, load_settings
from zonda.metastore.db import Metastore

ROLES = ("Viewer", "User", "Op", "Admin")
PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


#: argon2's smallest allowed cost: one pass over 8 KiB (the production hasher uses 19 MiB and two passes).
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


@pytest.fixture(autouse=True)
def _cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Users' password hashes in this process cost microseconds, not tens of milliseconds (still argon2id, still
    verified for real), unless the test is marked ``production_password_hasher``."""
    if request.node.get_closest_marker("production_password_hasher"):
        return
    from argon2 import PasswordHasher

    from zonda.operations import users

    cheap = PasswordHasher(**CHEAP_ARGON2)
    dummy = cheap.hash("unknown user")
    monkeypatch.setattr(users, "_hasher", lambda: cheap)
    monkeypatch.setattr(users, "_dummy_hash", lambda: dummy)


@dataclass
class FakeClock:
    """Seconds since the epoch, moved by the test (sessions age and rate-limit windows pass without sleeping)."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: The databases a ``database_dependent`` test runs on (the others run on SQLite only).
EVERY_WEB_DATABASE = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))
#: The fixture that makes each: SQLite from the session's migrated template (``web_store`` still runs ``init``,
#: which finds it at the head); PostgreSQL empty, migrated by ``web_store``.
_URL_FIXTURES = {"sqlite": "migrated_sqlite_url", "postgres": "postgres_url"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``database_dependent`` runs once per database of :data:`EVERY_WEB_DATABASE`.

    Most web tests check pages, forms and permissions, which no database changes: they run on SQLite, the cheap
    one. What a database can change (the SQL a request runs and how many statements, the grants' clauses, keyset
    paging and ordering, cascades, migrations, conditional writes) is marked, and runs on PostgreSQL too. The
    choice is per test, in the test module, where a reviewer sees it.
    """
    if metafunc.definition.get_closest_marker("database_dependent") and "web_db_url" in metafunc.fixturenames:
        metafunc.parametrize("web_db_url", EVERY_WEB_DATABASE, indirect=True)


@pytest.fixture
def web_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database: SQLite, or each of :data:`EVERY_WEB_DATABASE` for a ``database_dependent`` test."""
    return request.getfixturevalue(_URL_FIXTURES[getattr(request, "param", "sqlite")])


@pytest.fixture
def web_store(web_db_url: str) -> Iterator[Metastore]:
    store = Metastore(web_db_url)
    store.init()
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def web_settings(zonda_home: Path, web_store: Metastore) -> Settings:
    # The user is read on every request (no session_user_cache): tests change users and look at once. DAGs the
    # processor stores start unpaused: the pages show DAGs a user switched on (new DAGs pausing: tests/core).
    return load_settings(zonda_home).with_overrides(
        {
            ("database", "sql_alchemy_conn"): web_store.url,
            ("webserver", "session_user_cache"): 0.0,
            ("core", "dags_are_paused_at_creation"): False,
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class WebApp:
    """An app under test and what its tests need around it."""

    app: Any
    store: Metastore
    settings: Settings
    clock: FakeClock
    users: dict[str, str] = field(default_factory=dict)
    password: str = PASSWORD

    @property
    def engine(self) -> Any:
        return self.store.engine

    def client(self, **kwargs: Any) -> Any:
        return self.app.test_client(**kwargs)

    def login(self, client: Any, username: str, password: str = PASSWORD, next_: str | None = None) -> Any:
        token = csrf_from(client.get("/login"))
        form = {"username": username, "password": password, "csrf_token": token}
        if next_ is not None:
            form["next"] = next_
        return client.post("/login", data=form)

    def logged_in(self, role: str) -> Any:
        client = self.client()
        response = self.login(client, self.users[role])
        assert response.status_code == 303, response.text
        return client

    def token(self, client: Any) -> str:
        """The CSRF token of ``client``'s session (from a page that has a form)."""
        return csrf_from(client.get("/login" if not self.session_user(client) else "/dags"))

    @staticmethod
    def session_user(client: Any) -> bool:
        return client.get("/api/v1/version").status_code == 200


def csrf_from(response: Any) -> str:
    found = CSRF_FIELD.search(response.text)
    assert found, f"no CSRF field in {response.status_code} {response.text[:300]}"
    return found.group(1)


@pytest.fixture(scope="session")
def template_bytecode(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Jinja's own bytecode cache, shared by the apps of the session: each test builds a fresh app, whose Jinja
    environment would compile every page template it renders again (keyed by the template's source, so an edited
    template is compiled anew)."""
    from jinja2 import FileSystemBytecodeCache

    return FileSystemBytecodeCache(str(tmp_path_factory.mktemp("jinja_bytecode")))


@pytest.fixture
def make_web_app(
    web_settings: Settings, web_store: Metastore, clock: FakeClock, template_bytecode: Any
) -> Callable[..., WebApp]:
    """Build an app for this test's metastore, with ``overrides`` of the settings (e.g. short timeouts)."""
    from zonda.web import create_app

    def make(overrides: dict[tuple[str, str], Any] | None = None, users: bool = True) -> WebApp:
        settings = web_settings.with_overrides(overrides or {})
        app = create_app(settings, engine=web_store.engine, clock=clock)
        app.jinja_env.bytecode_cache = template_bytecode
        app.config["TESTING"] = True
        web = WebApp(app, web_store, settings, clock)
        if users:
            web.users = make_users(web_store.engine)
        return web

    return make


def make_users(engine: Any) -> dict[str, str]:
    """One user per role, named after the role in lower case; returns role -> username."""
    from zonda.operations.users import create_user, user_exists

    made = {}
    for role in ROLES:
        name = role.lower()
        if not user_exists(engine, name):
            create_user(engine, name, role, PASSWORD, actor="(test)")
        made[role] = name
    return made


@pytest.fixture
def web(make_web_app: Callable[..., WebApp]) -> WebApp:
    return make_web_app()


class RunningServer:
    """The app served by the real WSGI server on a free loopback port, in a thread, stopped afterwards. Enough
    threads for a few browser pages: each open live-update stream holds one."""

    def __init__(self, app: Any, threads: int = 16) -> None:
        from zonda.web.server import WebServer

        self.server = WebServer(app, "127.0.0.1", 0, threads=threads)
        self.url = self.server.url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the web server did not stop within 10 s"


@pytest.fixture
def serve() -> Iterator[Callable[[Any], RunningServer]]:
    started: list[RunningServer] = []

    def start(app: Any, threads: int = 16) -> RunningServer:
        server = RunningServer(app, threads)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
