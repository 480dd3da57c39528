"""The provider's wiring, without a broker: the executor is found through the manifest, the brief's
configuration names work, and the Celery app accepts JSON only and acknowledges late."""

from __future__ import annotations

from pathlib import Path

import pytest

from zonda.config import load_settings
from zonda.exceptions import ZondaConfigError


def test_core_executor_celery_executor_resolves_to_the_provider(zonda_home: Path) -> None:
    from zonda.executors.resolution import resolve_executor
    from zonda_celery.executor import CeleryExecutor

    entry, cls = resolve_executor("CeleryExecutor")
    assert cls is CeleryExecutor and entry.source == "provider celery"
    assert not cls.capabilities.supports_sqlite


def test_the_briefs_names_configure_the_app(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda_celery.app import build_app

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", "postgresql://zonda:s3cret@127.0.0.1:5432/meta")
    monkeypatch.setenv("ZONDA__CELERY__CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("ZONDA__CELERY__EXECUTION_TIMEOUT", "3600")
    monkeypatch.setenv("ZONDA__SCHEDULER__TASK_HEARTBEAT_TIMEOUT", "30")
    app = build_app(load_settings())
    assert app.conf.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    # The result backend defaults to the metastore, through Celery's SQLAlchemy backend.
    assert app.conf.result_backend == "db+postgresql+psycopg://zonda:s3cret@127.0.0.1:5432/meta"
    assert list(app.conf.accept_content) == ["json"] and app.conf.task_serializer == "json"
    assert app.conf.task_acks_late is True
    # Longer than the longest task, so a long task is not delivered again while it runs.
    assert app.conf.broker_transport_options["visibility_timeout"] > 3600
    assert "zonda.execute_workload" in app.tasks

    monkeypatch.setenv("ZONDA__CELERY__CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/3")
    assert build_app(load_settings()).conf.result_backend == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize("text", ["", "a,,b", " , "])
def test_an_empty_queue_name_is_a_one_line_error(text: str) -> None:
    from zonda_celery.worker_command import parse_queues

    with pytest.raises(ZondaConfigError, match="--queues"):
        parse_queues(text)
    assert parse_queues("a, b") == ["a", "b"]


def test_a_worker_refuses_a_sqlite_metastore(zonda_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zonda.cli import main

    assert main(["celery", "worker", "-q", "default"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a Celery worker cannot use a SQLite metastore") and "sql_alchemy_conn" in err


def test_broker_transport_options_come_from_airflows_section(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda_celery.app import build_app

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", "postgresql://127.0.0.1:5432/meta")
    monkeypatch.setenv("ZONDA__CELERY__EXECUTION_TIMEOUT", "100")
    monkeypatch.setenv("ZONDA__SCHEDULER__TASK_HEARTBEAT_TIMEOUT", "10")
    sized = build_app(load_settings()).conf.broker_transport_options
    assert sized == {"visibility_timeout": 100 + 2 * 10 + 60}
    monkeypatch.setenv("ZONDA__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT", "7")
    monkeypatch.setenv("ZONDA__CELERY_BROKER_TRANSPORT_OPTIONS__UNACKED_RESTORE_INTERVAL", "1.5")
    options = build_app(load_settings()).conf.broker_transport_options
    assert options == {"visibility_timeout": 7, "unacked_restore_interval": 1.5}
