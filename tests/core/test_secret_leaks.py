"""No secret leaks: the installation's secrets (configuration, connections in the environment and in the
metastore) never appear in import errors, task logs, `tasks test` XComs or `dags show`; files holding secrets or
data are owner-only whatever the umask. Real subprocesses, real metastores, the real log files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ENV_CONN_PW = "env-Pa55-123"
API_PW = "api-Pa55-456"
QUERY_TOKEN = "tok-Pa55-789"
STORED_PW = "stored-Pa55-xyz"
META_PW = "meta-Pa55-321"
BROKER_PW = "bp1"  # short: hidden as URL credentials, not by substring
RESULT_PW = "rb-Pa55-654"
WEB_SECRET = "web-Pa55-secret"
PLUGIN_TOKEN = "plug-Pa55-tok"
PARAM_SECRET = "param-Pa55-000"
XCOM_PW = "xpw-777"


def run_zonda(home: Path, *argv: str, env: dict[str, str] | None = None, umask: int | None = None) -> str:
    """``python -m zonda ...`` in a child process; returns stdout+stderr (asserts success)."""
    full_env = {**os.environ, **(env or {}), "ZONDA_HOME": str(home), "ZONDA__CORE__LOAD_EXAMPLES": "false"}
    full_env = {k: v for k, v in full_env.items() if not (k.startswith("ZONDA__") and k not in (env or {}))}
    full_env["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
    result = subprocess.run(
        [sys.executable, "-m", "zonda", *argv],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output
    return output


def secrets_in(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


# -- 1. import errors ---------------------------------------------------------------------------------------

IMPORT_ERRORS = {
    "fetched.py": """
        from zonda.hooks import BaseHook
        conn = BaseHook.get_connection("warehouse")
        raise RuntimeError(f"cannot reach {conn.host} as {conn.login}:{conn.password}")
    """,
    "raw_env.py": """
        import os
        raise RuntimeError("api is " + os.environ["ZONDA_CONN_API"] + " warehouse " + os.environ["ZONDA_CONN_WAREHOUSE"])
    """,
    "stored.py": """
        raise RuntimeError("the stored password is " + "stored-" + "Pa55-xyz")
    """,
    "config.py": """
        import os, pathlib
        raise RuntimeError(pathlib.Path(os.environ["ZONDA_HOME"], "zonda.toml").read_text() + os.environ["ZONDA__WEBSERVER__SECRET_KEY"])
    """,
}


def test_import_errors_are_masked_in_the_table_and_the_cli(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    (zonda_home / "zonda.toml").write_text(f'[core]\nfernet_key = "{key}"\nload_examples = false\n')
    (zonda_home / "zonda.toml").chmod(0o600)
    dags = zonda_home / "dags"
    dags.mkdir()
    for name, body in IMPORT_ERRORS.items():
        (dags / name).write_text("# a zonda DAG file\n" + textwrap.dedent(body), encoding="utf-8")
    env = {
        "ZONDA_CONN_WAREHOUSE": f"postgres://etl:{ENV_CONN_PW}@db.internal:5432/dwh",
        "ZONDA_CONN_API": f"https://apiuser:{API_PW}@api.internal/v1?token={QUERY_TOKEN}",
        "ZONDA__WEBSERVER__SECRET_KEY": WEB_SECRET,
    }
    secrets = [ENV_CONN_PW, API_PW, QUERY_TOKEN, STORED_PW, key, WEB_SECRET]
    run_zonda(zonda_home, "db", "init", env=env)
    run_zonda(zonda_home, "connections", "add", "vault", "--conn-uri", f"http://u:{STORED_PW}@h", env=env)

    shown = run_zonda(zonda_home, "dags", "list-import-errors", "--output", "json", env=env)
    errors = json.loads(shown[shown.index("[") :])
    assert len(errors) == len(IMPORT_ERRORS), shown
    assert secrets_in(shown, secrets) == [] and "***" in shown

    with sqlite3.connect(zonda_home / "zonda.db") as db:
        stored = [row[0] for row in db.execute("SELECT stacktrace FROM import_error")]
    assert len(stored) == len(IMPORT_ERRORS)
    assert secrets_in("\n".join(stored), secrets) == []

    # The DAG processor (the other writer of the table), run in this process with the same environment.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "false")
    from zonda.config import load_settings
    from zonda.dag_processing import DagProcessor
    from zonda.metastore.db import Metastore

    settings = load_settings()
    metastore = Metastore.from_settings(settings)
    try:
        with sqlite3.connect(zonda_home / "zonda.db") as db:
            db.execute("DELETE FROM import_error")
        with DagProcessor(settings, metastore) as processor:
            processor.run_once(full=True)
    finally:
        metastore.dispose()
    with sqlite3.connect(zonda_home / "zonda.db") as db:
        stored = [row[0] for row in db.execute("SELECT stacktrace FROM import_error")]
    assert len(stored) == len(IMPORT_ERRORS)
    assert secrets_in("\n".join(stored), secrets) == [] and "***" in "\n".join(stored)


# -- 2. configuration in task logs, XComs and dags show --------------------------------------------------------

LEAKY_DAG = """
from datetime import datetime
from zonda import DAG
from zonda.operators import BashOperator, PythonOperator


def give():
    return {"token": "xcom-token-1", "url": "https://u:xpw-777@h/x", "note": "ok"}


with DAG("leaky", start_date=datetime(2024, 1, 1), schedule=None, params={"api_token": "param-Pa55-000"}):
    BashOperator(
        task_id="env",
        bash_command='env; cat "$ZONDA_HOME/zonda.toml"; echo "get https://h/x?password=qpw-123&page=2"',
    )
    BashOperator(
        task_id="conf",
        bash_command='echo "{{ conf.get("database", "sql_alchemy_conn") }} {{ conf.get("webserver", "secret_key") }}"',
    )
    PythonOperator(task_id="give", python_callable=give)
"""


def test_task_processes_hide_configuration_and_connections(zonda_home: Path, postgres_url: str) -> None:
    key = Fernet.generate_key().decode()
    (zonda_home / "zonda.toml").write_text(f'# mine\n[core]\nfernet_key = "{key}"\n')
    (zonda_home / "zonda.toml").chmod(0o600)
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "leaky.py").write_text(LEAKY_DAG, encoding="utf-8")
    metastore_url = postgres_url.replace("postgres@", f"postgres:{META_PW}@", 1)  # trust auth ignores it
    env = {
        "ZONDA__DATABASE__SQL_ALCHEMY_CONN": metastore_url,
        "ZONDA__CELERY__BROKER_URL": f"redis://:{BROKER_PW}@127.0.0.1:6379/0",
        "ZONDA__CELERY__RESULT_BACKEND": f"db+postgresql://postgres:{RESULT_PW}@127.0.0.1/x",
        "ZONDA__WEBSERVER__SECRET_KEY": WEB_SECRET,
        "ZONDA__MY_PLUGIN__API_TOKEN": PLUGIN_TOKEN,
        "ZONDA_CONN_API": f"https://apiuser:{API_PW}@api.internal/v1?token={QUERY_TOKEN}",
    }
    secrets = [key, META_PW, f":{BROKER_PW}@", RESULT_PW, WEB_SECRET, PLUGIN_TOKEN, API_PW, QUERY_TOKEN, "qpw-123"]
    run_zonda(zonda_home, "db", "init", env=env)

    out = run_zonda(zonda_home, "dags", "test", "leaky", env=env)
    logs = {path: path.read_text() for path in (zonda_home / "logs").rglob("*.log")}
    env_logs = [text for path, text in logs.items() if "task_id=env" in str(path)]
    assert env_logs and "ZONDA__WEBSERVER__SECRET_KEY=***" in env_logs[0], env_logs
    assert "password=***&page=2" in env_logs[0]
    assert secrets_in(out + "\n".join(logs.values()), secrets) == []
    conf_logs = [text for path, text in logs.items() if "task_id=conf" in str(path)]
    assert conf_logs and "postgresql://postgres:***@" in conf_logs[0], conf_logs

    # Scheduled path: a queued run whose task runs through `zonda tasks run` (a fresh task process).
    run_zonda(zonda_home, "dags", "trigger", "leaky", "--run-id", "r1", env=env)
    out = run_zonda(zonda_home, "tasks", "run", "leaky", "env", "r1", env=env)
    run_logs = list((zonda_home / "logs").rglob("run_id=r1/task_id=env/*.log"))
    assert run_logs, out
    text = run_logs[0].read_text()
    assert "ZONDA__DATABASE__SQL_ALCHEMY_CONN=" in text
    assert secrets_in(out + text, secrets) == []

    out = run_zonda(zonda_home, "tasks", "test", "leaky", "give", env=env)
    assert "XComs:" in out and "'note': 'ok'" in out
    assert "xcom-token-1" not in out and XCOM_PW not in out

    out = run_zonda(zonda_home, "dags", "show", "leaky", "--output", "json", env=env)
    assert "api_token" in out and PARAM_SECRET not in out


# -- 4. file modes -------------------------------------------------------------------------------------------


def test_files_under_home_are_owner_only_whatever_the_umask(zonda_home: Path) -> None:
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "leaky.py").write_text(LEAKY_DAG, encoding="utf-8")
    home_env: dict[str, str] = {}
    run_zonda(zonda_home, "db", "init", env=home_env, umask=0)
    run_zonda(zonda_home, "connections", "add", "c", "--conn-uri", "http://u:pw-12345@h", env=home_env, umask=0)
    run_zonda(zonda_home, "dags", "test", "leaky", env=home_env, umask=0)
    files = [zonda_home / "zonda.toml", zonda_home / "zonda.db"]
    files += [p for p in zonda_home.glob("zonda.db-*")]
    logs = zonda_home / "logs"
    files += [p for p in logs.rglob("*") if p.is_file()]
    folders = [logs, *[p for p in logs.rglob("*") if p.is_dir()]]
    assert any(p.suffix == ".log" for p in files)
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    for path in folders:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))


def test_sqlite_wal_and_shm_files_are_owner_only(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os
        os.umask(0)
        from zonda.metastore.db import Metastore
        store = Metastore("sqlite:///{tmp_path}/m/zonda.db")
        store.init()
        with store.engine.connect() as conn:  # WAL: -wal and -shm exist while a connection is open
            conn.exec_driver_sql("SELECT 1")
            import pathlib
            for p in sorted(pathlib.Path("{tmp_path}/m").iterdir()):
                print(p.name, oct(p.stat().st_mode & 0o777))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    modes = dict(line.split() for line in out.splitlines())
    assert "zonda.db" in modes and "zonda.db-wal" in modes, out
    assert set(modes.values()) == {"0o600"}, out
    assert oct((tmp_path / "m").stat().st_mode & 0o777) == "0o700"


def test_connection_host_with_credentials_is_masked_in_the_cli(zonda_home: Path) -> None:
    run_zonda(zonda_home, "db", "init")
    conn = json.dumps({"conn_type": "http", "host": "https://hostuser:host-Pa55-1@api.internal"})
    run_zonda(zonda_home, "connections", "add", "hosted", "--conn-json", conn)
    for command in (["connections", "get", "hosted"], ["connections", "list", "--output", "json"]):
        out = run_zonda(zonda_home, *command)
        assert "hostuser:***@api.internal" in out and "host-Pa55-1" not in out
