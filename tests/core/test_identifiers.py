"""Run ids, connection ids and run conf follow one rule set (:mod:`zonda.identifiers`) wherever they enter:
anything else is a one-line error naming the rule, on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from zonda.cli import main
from zonda.identifiers import (
    MAX_CONF_DEPTH,
    InvalidIdentifier,
    parse_conf_text,
    validate_conf,
    validate_conn_id,
    validate_run_id,
)
from zonda.runner.logs import attempt_log_path

DAG_FILE = """
from datetime import datetime
from zonda import DAG
from zonda.operators import EmptyOperator

with DAG("ids", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="only")
"""

BAD_RUN_IDS = ["a/b", "a\\b", "../up", "x" * 251, "x" * 300, "space here", "new\nline", "é", "semi;colon", "-lead", ""]
BAD_CONN_IDS = ["a/b", "a b", "x" * 251, "a:b", "a%2Fb", "é", "-lead", "a\nb", ""]


@pytest.mark.parametrize("run_id", ["manual__2024-01-01T00:00:00+00:00", "r1", "a_b", "x" * 250, "a.b~c:d+e-f"])
def test_valid_run_ids_pass(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_invalid_run_ids_name_the_rule(run_id: str) -> None:
    with pytest.raises(InvalidIdentifier, match=r"letters, digits and _ \. : \+ ~ -, at most 250") as info:
        validate_run_id(run_id)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("conn_id", BAD_CONN_IDS)
def test_invalid_conn_ids_name_the_rule(conn_id: str) -> None:
    with pytest.raises(InvalidIdentifier, match=r"letters, digits and _ \. -, at most 250"):
        validate_conn_id(conn_id)


def test_log_paths_of_different_run_ids_never_collide(tmp_path: Path) -> None:
    ids = ["a/b", "a_b", "a\\b", "a%2Fb", "a%5Cb"]
    paths = {attempt_log_path(tmp_path, "d", run_id, "t", -1, 1) for run_id in ids}
    assert len(paths) == len(ids)
    for path in paths:
        parts = path.relative_to(tmp_path).parts
        assert len(parts) == 4 and parts[1].startswith("run_id=")  # no run id adds or leaves a folder level


def test_conf_depth_and_size_are_bounded() -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(InvalidIdentifier, match=f"nested more than {MAX_CONF_DEPTH} levels"):
        parse_conf_text('{"a": ' + deep + "}")
    with pytest.raises(InvalidIdentifier, match="at most 100 "):
        parse_conf_text(json.dumps({"a": "x" * 200}), max_bytes=100)
    # brackets inside strings are not nesting
    assert parse_conf_text(json.dumps({"a": "[" * 500}))["a"] == "[" * 500
    nested: dict = {}
    cursor = nested
    for _ in range(100):
        cursor["n"] = {}
        cursor = cursor["n"]
    with pytest.raises(InvalidIdentifier, match="nested more than"):
        validate_conf(nested)
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(InvalidIdentifier, match="nested more than"):
        validate_conf({"c": cycle})
    shared = ["x"]
    for _ in range(60):  # 2**60 leaves if walked naively
        shared = [shared, shared]
    with pytest.raises(InvalidIdentifier, match="larger than"):
        validate_conf({"s": shared})


# -- through the CLI, on every backend ------------------------------------------------------------------------


@pytest.fixture
def ids_home(zonda_home: Path, metastore_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", metastore_url)
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "ids.py").write_text(textwrap.dedent(DAG_FILE), encoding="utf-8")
    from zonda.cli._loading import open_metastore
    from zonda.config import load_settings
    from zonda.dagbag import DagBag
    from zonda.runner.store import MetastoreRunStore

    settings = load_settings()
    assert main(["db", "init"]) == 0
    metastore = open_metastore(settings)
    try:
        store = MetastoreRunStore(metastore)
        for dag in DagBag.from_settings(settings).collect():
            store.sync_dag(dag)
        store.close()
    finally:
        metastore.dispose()
    return zonda_home


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_cli_refuses_bad_ids_and_conf_on_every_backend(ids_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for run_id in ["a/b", "x" * 300, "x" * 251, "bad id"]:
        code, _, err = cli(capsys, "dags", "trigger", "ids", "--run-id", run_id)
        assert code == 1 and "run id" in one_line_error(err) and "at most 250" in err
        code, _, err = cli(capsys, "tasks", "run", "ids", "only", run_id)
        assert code == 1 and "at most 250" in one_line_error(err)
    code, _, err = cli(capsys, "dags", "trigger", "ids", "--run-id", "x" * 250)
    assert code == 0, err
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    for command in (["dags", "trigger", "ids"], ["dags", "backfill", "ids", "-s", "2024-01-01", "-e", "2024-01-01"]):
        code, _, err = cli(capsys, *command, "--conf", deep)
        assert code == 1 and "nested more than 64 levels" in one_line_error(err)
    for conn_id in ["a/b", "x" * 300, "a b"]:
        code, _, err = cli(capsys, "connections", "add", conn_id, "--conn-uri", "http://h")
        assert code == 1 and "connection id" in one_line_error(err) and "at most 250" in err
    code, _, err = cli(capsys, "connections", "add", "y" * 250, "--conn-uri", "http://h")
    assert code == 0, err


def test_connections_import_checks_every_id_before_storing_any(
    ids_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "conns.json"
    path.write_text(json.dumps({"good": {"conn_type": "http"}, "bad/one": {"conn_type": "http"}}), encoding="utf-8")
    code, _, err = cli(capsys, "connections", "import", str(path))
    assert code == 1 and "bad/one" in one_line_error(err)
    code, out, _ = cli(capsys, "connections", "list", "--output", "json")
    assert json.loads(out) == []


def test_lookup_and_python_api_refuse_bad_ids(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda import DAG
    from zonda.config import load_settings
    from zonda.operators import EmptyOperator
    from zonda.runner.dag_runner import make_run_info
    from zonda.secrets import ConnectionLookup
    from zonda.secrets.environment import EnvironmentVariablesBackend

    monkeypatch.setenv("ZONDA_CONN_A", "http://h")
    with pytest.raises(InvalidIdentifier, match="connection id"):
        EnvironmentVariablesBackend().get_connection("a/../b")
    with pytest.raises(InvalidIdentifier, match="connection id"):
        ConnectionLookup(load_settings(), plugins=False).get_connection("x" * 300)
    with DAG("api", start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="t")
    with pytest.raises(InvalidIdentifier, match="run id"):
        make_run_info(dag, None, conf=None, run_id="a/b", run_type="manual")
    with pytest.raises(InvalidIdentifier, match="nested more than"):
        make_run_info(dag, None, conf={"x": json.loads("[" * 70 + "]" * 70)}, run_id=None, run_type="manual")
