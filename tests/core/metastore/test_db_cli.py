"""``zonda db init | migrate | reset | check`` through the real CLI entry point."""

from __future__ import annotations

import importlib.util
import json

import pytest

from zonda import cli
from zonda.metastore import HEAD_REVISION
from zonda.metastore.db import Metastore
from zonda.metastore.models import DagModel


@pytest.fixture(autouse=True)
def _only_existing_command_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other command groups are built in parallel; a group whose module is missing must not break these tests.
    groups = [group for group in cli.COMMAND_GROUPS if importlib.util.find_spec(group[1]) is not None]
    monkeypatch.setattr(cli, "COMMAND_GROUPS", groups)


@pytest.fixture
def configured_url(zonda_home, metastore_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", metastore_url)
    return metastore_url


def test_init_then_check(configured_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "check"]) == 1
    assert "zonda db init" in capsys.readouterr().out

    assert cli.main(["db", "init"]) == 0
    out = capsys.readouterr().out
    assert f"Initialized the metastore {configured_url} (revision {HEAD_REVISION})" in out
    assert cli.main(["db", "init"]) == 0
    assert "up to date" in capsys.readouterr().out

    assert cli.main(["db", "check", "--output", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["current_revision"] == HEAD_REVISION
    assert cli.main(["db", "check"]) == 0
    assert "current_revision  " + HEAD_REVISION in capsys.readouterr().out


def test_migrate_and_reset(zonda_home, sqlite_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", sqlite_url)
    assert cli.main(["db", "migrate"]) == 0
    assert f"from revision (empty) to {HEAD_REVISION}" in capsys.readouterr().out
    store = Metastore(sqlite_url)
    with store.session() as session:
        session.add(DagModel(dag_id="precious"))

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert cli.main(["db", "reset"]) == 1
    assert "Cancelled" in capsys.readouterr().err
    with store.session() as session:
        assert session.get(DagModel, "precious") is not None

    assert cli.main(["db", "reset", "--yes"]) == 0
    assert f"Reset the metastore {sqlite_url}" in capsys.readouterr().out
    with store.session() as session:
        assert session.get(DagModel, "precious") is None
    store.dispose()


def test_check_unreachable_prints_redacted_url(zonda_home, monkeypatch, capsys) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", f"postgresql://zonda:topsecret@127.0.0.1:{port}/zonda")
    assert cli.main(["db", "check"]) == 1
    out = capsys.readouterr().out
    assert f"postgresql://zonda:***@127.0.0.1:{port}/zonda" in out
    assert "topsecret" not in out

    assert cli.main(["db", "init"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot connect to the metastore at postgresql://zonda:***@")
    assert "topsecret" not in err
