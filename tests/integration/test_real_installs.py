"""Proof on real installs: wheels of the core, the http provider, the example plugin package and a broken
plugin package, pip-installed (with uv) into a fresh virtual environment, then driven through the real
``zonda`` executable of that environment.

Shows discovery, lazy loading (module markers in ``sys.modules``), isolation (the broken plugin is reported
while a DAG still runs), listener events in order, and a plugin's CLI command.

Two more fresh environments get only the core and one provider each, installed from their folders
(``pip install ./core ./providers/postgres``, ``./providers/elasticsearch[local]``): each stands alone, is discovered, and its hook talks
to a real server (PostgreSQL; the noida-db its ``local`` extra brought) with the client its own dependencies brought in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    candidate = REPO / ".tools" / "bin" / "uv"
    if not found and candidate.exists():
        found = str(candidate)
    if not found:
        pytest.fail(
            "uv is needed to build wheels and create the test venv: run the suite through `python3 dev.py test`"
        )
    return found


def _run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True):
    result = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


BROKEN_PYPROJECT = """
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "zonda-plugin-broken"
version = "0.0.1"
requires-python = ">=3.11"

[project.entry-points."zonda.plugins"]
broken = "zonda_broken"

[tool.hatch.build.targets.wheel]
packages = ["zonda_broken"]
"""

SMALL_DAG = """
from datetime import datetime
from zonda import DAG, task
from zonda.operators import BashOperator

with DAG("small", start_date=datetime(2024, 1, 1), schedule=None):
    @task
    def one() -> int:
        return 1

    one() >> BashOperator(task_id="skip_me", bash_command="exit 99")
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> dict:
    uv = _uv()
    root = tmp_path_factory.mktemp("real_install")
    wheels = root / "wheels"
    broken = root / "zonda-plugin-broken"
    (broken / "zonda_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "zonda_broken" / "__init__.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    for project in (REPO / "core", REPO / "providers" / "http", REPO / "plugins" / "zonda-plugin-events", broken):
        _run([uv, "build", "--wheel", "--quiet", "--out-dir", str(wheels), str(project)])
    env_dir = root / "venv"
    _run([uv, "venv", "--quiet", "--python", os.environ.get("ZONDA_TEST_PYTHON", sys.executable), str(env_dir)])
    python = env_dir / "bin" / "python"
    _run([uv, "pip", "install", "--quiet", "--python", str(python), *map(str, sorted(wheels.glob("*.whl")))])
    home = root / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "small.py").write_text(textwrap.dedent(SMALL_DAG))
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "ZONDA_HOME": str(home),
        "ZONDA__CORE__LOAD_EXAMPLES": "false",
        "HOME": str(root),
    }
    return {"python": str(python), "zonda": str(env_dir / "bin" / "zonda"), "env": env, "home": home}


def _modules_after(venv: dict, argv: list[str], modules: list[str]) -> dict[str, bool]:
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from zonda.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main({argv!r})
        print(json.dumps({{m: m in sys.modules for m in {modules!r}}}))
    """)
    out = _run([venv["python"], "-c", code], env=venv["env"]).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_discovery_on_a_real_install(venv) -> None:
    providers = json.loads(_run([venv["zonda"], "providers", "list", "--output", "json"], env=venv["env"]).stdout)
    rows = providers["providers"] if isinstance(providers, dict) else providers
    assert "http" in {row.get("name") for row in rows}
    plugins = json.loads(_run([venv["zonda"], "plugins", "list", "--output", "json"], env=venv["env"]).stdout)
    by_name = {row["name"]: row for row in plugins}
    assert by_name["events"]["status"] == "loaded"
    assert by_name["events"]["version"] == "0.1.0"
    assert "on_task_instance_success" in by_name["events"]["hooks"]


def test_lazy_loading_on_a_real_install(venv) -> None:
    watched = ["zonda_events.plugin", "zonda_broken", "requests", "zonda_http.hooks"]
    for argv in (["version"], ["providers", "list"], ["config", "list"]):
        loaded = _modules_after(venv, argv, watched)
        assert not any(loaded.values()), (argv, loaded)
    after_run = _modules_after(venv, ["dags", "test", "small", "2024-01-01", "-q"], watched)
    assert after_run["zonda_events.plugin"] is True  # running tasks loads the listener plugins
    assert after_run["requests"] is False  # no provider code was needed


def test_broken_plugin_is_reported_and_dags_still_run(venv) -> None:
    plugins = json.loads(_run([venv["zonda"], "plugins", "list", "--output", "json"], env=venv["env"]).stdout)
    broken = next(row for row in plugins if row["name"] == "broken")
    assert broken["status"] == "error" and "broken on purpose" in broken["error"]
    events = venv["home"] / "events.jsonl"
    events.unlink(missing_ok=True)
    result = _run([venv["zonda"], "dags", "test", "small", "2024-01-02"], env=venv["env"])
    assert "success" in result.stdout
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["event"], e.get("task_id")) for e in lines] == [
        ("dag_run_running", None),
        ("task_running", "one"),
        ("task_success", "one"),
        ("task_running", "skip_me"),
        ("task_skipped", "skip_me"),
        ("dag_run_success", None),
    ]


def test_plugin_cli_command_on_a_real_install(venv) -> None:
    _run([venv["zonda"], "dags", "test", "small", "2024-01-03", "-q"], env=venv["env"])
    out = _run([venv["zonda"], "events", "-n", "2"], env=venv["env"]).stdout
    assert "task_skipped" in out and "dag_run_success" in out


@pytest.fixture(scope="module")
def postgres_venv(tmp_path_factory) -> dict:
    """Core and the postgres provider alone, installed from their source folders."""
    uv = _uv()
    root = tmp_path_factory.mktemp("postgres_install")
    env_dir = root / "venv"
    _run([uv, "venv", "--quiet", "--python", os.environ.get("ZONDA_TEST_PYTHON", sys.executable), str(env_dir)])
    python = env_dir / "bin" / "python"
    _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            str(REPO / "core"),
            str(REPO / "providers" / "postgres"),
        ]
    )
    home = root / "home"
    home.mkdir()
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "ZONDA_HOME": str(home),
        "ZONDA__CORE__LOAD_EXAMPLES": "false",
        "HOME": str(root),
    }
    return {"python": str(python), "zonda": str(env_dir / "bin" / "zonda"), "env": env}


def test_postgres_provider_installs_alone_and_is_discovered(postgres_venv, postgres_url) -> None:
    out = _run([postgres_venv["zonda"], "providers", "list", "--output", "json"], env=postgres_venv["env"]).stdout
    providers = json.loads(out)
    assert [row["name"] for row in providers["providers"]] == ["postgres"]  # nothing else came along
    [postgres] = providers["providers"]
    assert postgres["package"] == "zonda-provider-postgres"
    assert "zonda_postgres.hooks:PostgresHook" in postgres["hooks"]
    assert not providers.get("errors")
    types = _run(
        [postgres_venv["zonda"], "providers", "connection-types", "--output", "json"], env=postgres_venv["env"]
    ).stdout
    assert "postgres" in types
    code = textwrap.dedent("""
        import sys
        from zonda_postgres.hooks import PostgresHook
        print(PostgresHook().get_first("SELECT 40 + %s", [2])[0], "requests" in sys.modules)
    """)
    env = {**postgres_venv["env"], "ZONDA_CONN_POSTGRES_DEFAULT": postgres_url.replace("postgresql://", "postgres://")}
    assert _run([postgres_venv["python"], "-c", code], env=env).stdout.split() == ["42", "False"]


@pytest.fixture(scope="module")
def elasticsearch_venv(tmp_path_factory) -> dict:
    """Core and the elasticsearch provider with its ``local`` extra, installed from their source folders."""
    uv = _uv()
    root = tmp_path_factory.mktemp("elasticsearch_install")
    env_dir = root / "venv"
    _run([uv, "venv", "--quiet", "--python", os.environ.get("ZONDA_TEST_PYTHON", sys.executable), str(env_dir)])
    python = env_dir / "bin" / "python"
    provider = REPO / "providers" / "elasticsearch"
    _run([uv, "pip", "install", "--quiet", "--python", str(python), str(REPO / "core"), f"{provider}[local]"])
    home = root / "home"
    home.mkdir()
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "ZONDA_HOME": str(home), "HOME": str(root)}
    return {"python": str(python), "zonda": str(env_dir / "bin" / "zonda"), "env": env, "home": home}


def test_elasticsearch_provider_installs_alone_and_is_discovered(elasticsearch_venv) -> None:
    venv = elasticsearch_venv
    providers = json.loads(_run([venv["zonda"], "providers", "list", "--output", "json"], env=venv["env"]).stdout)
    assert [row["name"] for row in providers["providers"]] == ["elasticsearch"]
    [es] = providers["providers"]
    assert es["package"] == "zonda-provider-elasticsearch"
    assert "zonda_elasticsearch.transfers:SqlToElasticsearchOperator" in es["transfers"]
    assert es["example_dags"] == ["zonda_elasticsearch.example_dags"]
    assert not providers.get("errors")
    dags = json.loads(_run([venv["zonda"], "dags", "list", "--output", "json"], env=venv["env"]).stdout)
    assert "es_search_pipeline" in [row["dag_id"] for row in dags]
    # The `local` extra brought a server; the hook, with the client its own dependencies installed, reaches it.
    code = textwrap.dedent("""
        import os, sys, tempfile
        from zonda_elasticsearch.local_server import LocalElasticsearch
        with LocalElasticsearch(tempfile.mkdtemp()) as server:
            os.environ["ZONDA_CONN_ELASTICSEARCH_DEFAULT"] = server.url.replace("http://", "elasticsearch://") + "/http"
            from zonda_elasticsearch.hooks import ElasticsearchHook
            ok, message = ElasticsearchHook().test_connection()
            print(ok, "psycopg" in sys.modules, "requests" in sys.modules)
            print(message)
    """)
    out = _run([venv["python"], "-c", code], env=venv["env"]).stdout.splitlines()
    assert out[0] == "True False False", out
    assert "8.15" in out[1] or "9." in out[1], out
