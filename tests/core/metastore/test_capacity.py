"""Warning at scheduler start when the database server cannot take the connections a LocalExecutor may open."""

from __future__ import annotations

import logging

import pytest

from zonda.metastore.capacity import connection_budget_warning, connection_headroom
from zonda.metastore.engine import make_engine


@pytest.fixture(
    params=[pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def server_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("postgres_url" if request.param == "postgres" else "mysql_url")


def test_headroom_and_warning_on_a_real_server(server_url: str) -> None:
    engine = make_engine(server_url)
    try:
        headroom = connection_headroom(engine)
        assert headroom is not None
        limit, used = headroom
        assert limit >= 10 and 1 <= used <= limit
        assert connection_budget_warning(engine, 1, "a scheduler") is None
        message = connection_budget_warning(engine, limit + 1, "a scheduler")
        assert message is not None
        assert f"up to {limit + 1} database connections" in message and f"allows {limit}" in message
        assert "Lower [core] parallelism" in message and "max_connections" in message
    finally:
        engine.dispose()


def test_sqlite_has_no_connection_limit(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'z.db'}")
    try:
        assert connection_headroom(engine) is None
        assert connection_budget_warning(engine, 10_000, "a scheduler") is None
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_scheduler_whose_parallelism_exceeds_the_server_warns(
    zonda_home, monkeypatch, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from zonda.config import load_settings
    from zonda.executors.local import LocalExecutor
    from zonda.metastore.db import Metastore
    from zonda.scheduler.scheduler import Scheduler

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", postgres_url)
    settings = load_settings()
    metastore = Metastore.from_settings(settings)
    try:
        big = Scheduler(settings, executor=LocalExecutor(parallelism=5000, settings=settings), metastore=metastore)
        with caplog.at_level(logging.WARNING, logger="zonda.scheduler"):
            big._warn_about_connections()  # the check start() runs, without forking 5,000 workers
        assert "this scheduler (LocalExecutor) may open up to 5007 database connections" in caplog.text
        caplog.clear()
        small = Scheduler(settings, executor=LocalExecutor(parallelism=4, settings=settings), metastore=metastore)
        with caplog.at_level(logging.WARNING, logger="zonda.scheduler"):
            small._warn_about_connections()
        assert "database connections" not in caplog.text
    finally:
        metastore.dispose()
