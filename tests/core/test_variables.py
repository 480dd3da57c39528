"""Variables (issue 12, section 3): the CLI, ``Variable.get/set/delete``, the lookup order (plugin secrets backends,
``ZONDA_VAR_<KEY>``, the metastore), encryption at rest, ``var`` in templates, masking of sensitive keys,
import/export, bad and missing keys. On real SQLite, PostgreSQL and MariaDB metastores, and through real
``zonda dags test`` processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import zonda.plugins
from zonda import DAG, Variable, task
from zonda.cli import main
from zonda.config import load_settings
from zonda.context import build_context
from zonda.crypto import generate_key
from zonda.exceptions import TemplateRenderError, VariableNotFound
from zonda.identifiers import InvalidIdentifier
from zonda.masking import SecretsMasker
from zonda.operators import BashOperator
from zonda.plugins.manager import PluginManager
from zonda.secrets import ConnectionLookup, SecretsBackend
from zonda.templating import TemplateRenderer
from zonda.testing import run_dag
from zonda.variable import InvalidVariableValue, VariableAccessor

START = datetime(2024, 1, 1)
SECRET = "s3cr3t-T0ken-value"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def key(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A Fernet key in the environment, no outer ``ZONDA_VAR_*``, and an initialized SQLite metastore."""
    from zonda.metastore.db import Metastore

    value = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", value)
    for name in list(os.environ):
        if name.startswith("ZONDA_VAR_"):
            monkeypatch.delenv(name)
    Metastore.open(load_settings()).dispose()
    return value


@pytest.fixture
def on_backend(key: str, metastore_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI and ``Variable`` pointed at a fresh, initialized metastore of each supported database."""
    from zonda.metastore.db import Metastore

    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", metastore_url)
    store = Metastore(metastore_url)
    store.init()
    store.dispose()
    return metastore_url


def raw_variables(url: str) -> dict[str, tuple[str, Any, str | None]]:
    """The ``variable`` table's rows as the database holds them (a plain SELECT, no Zonda decoding)."""
    from zonda.metastore.db import Metastore

    store = Metastore(url)
    try:
        with store.engine.connect() as db:
            quote = "`" if db.dialect.name in ("mysql", "mariadb") else '"'
            rows = db.execute(text(f"SELECT {quote}key{quote}, val, is_encrypted, description FROM variable"))
            return {row[0]: (row[1], row[2], row[3]) for row in rows}
    finally:
        store.dispose()


# -- CLI round trip and encryption at rest, on every database -----------------------------------------------


def test_cli_round_trip_encrypted_at_rest(on_backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "variables", "set", "bucket", "my-bucket", "--description", "Where exports go")
    assert (code, out.strip()) == (0, "added variable bucket"), err
    code, out, err = run(capsys, "variables", "set", "limits", '{"rows": 10, "names": ["a", "b"]}', "--json")
    assert code == 0, err
    code, out, _ = run(capsys, "variables", "set", "api_token", SECRET)
    assert code == 0 and SECRET not in out

    stored = raw_variables(on_backend)
    assert set(stored) == {"bucket", "limits", "api_token"}
    for name, plain in (("bucket", "my-bucket"), ("api_token", SECRET), ("limits", '"rows"')):
        val, encrypted, _ = stored[name]
        assert plain not in val and val.startswith("gAAAA") and bool(encrypted), name
    assert stored["bucket"][2] == "Where exports go"

    assert run(capsys, "variables", "get", "bucket")[1] == "my-bucket\n"
    assert run(capsys, "variables", "get", "api_token")[1] == f"{SECRET}\n"  # explicit get prints, as Airflow
    code, out, _ = run(capsys, "variables", "get", "limits", "--json")
    assert json.loads(out) == {"rows": 10, "names": ["a", "b"]}

    code, out, _ = run(capsys, "variables", "list", "--output", "json")
    rows = {row["key"]: row for row in json.loads(out)}
    assert rows["api_token"]["value"] == "***" and SECRET not in out
    assert rows["bucket"] == {
        "key": "bucket",
        "value": "my-bucket",
        "description": "Where exports go",
        "is_encrypted": True,
    }
    code, out, _ = run(capsys, "variables", "list")
    assert "api_token  ***" in out and SECRET not in out and "my-bucket" in out
    assert '{"rows":10,"names":["a","b"]}' in out  # a JSON value stays on its line of the table

    code, out, _ = run(capsys, "variables", "set", "bucket", "other-bucket")
    assert out.strip() == "updated variable bucket"
    assert Variable.get("bucket") == "other-bucket"
    code, out, _ = run(capsys, "variables", "delete", "bucket")
    assert (code, out.strip()) == (0, "deleted variable bucket")
    code, _, err = run(capsys, "variables", "get", "bucket")
    assert code == 1 and "variable 'bucket' is not defined" in err
    assert "bucket" not in raw_variables(on_backend)


def test_variable_api_on_every_database(on_backend: str) -> None:
    Variable.set("config", {"retries": 3, "tags": ["x"]}, serialize_json=True, description="Job settings")
    Variable.set("count", 42)  # not a string: stored as its text, as Airflow does
    assert Variable.get("config", deserialize_json=True) == {"retries": 3, "tags": ["x"]}
    assert Variable.get("count") == "42"
    assert raw_variables(on_backend)["config"][2] == "Job settings"
    assert Variable.delete("config") == 1
    assert Variable.delete("config") == 0
    assert Variable.get("config", default_var=None) is None


def test_first_write_makes_the_fernet_key(zonda_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "variables", "set", "bucket", "my-bucket")
    assert code == 0, err
    settings_text = (zonda_home / "zonda.toml").read_text()
    assert "fernet_key" in settings_text
    assert stat.S_IMODE((zonda_home / "zonda.toml").stat().st_mode) == 0o600
    assert run(capsys, "variables", "get", "bucket")[1] == "my-bucket\n"


def test_rotate_fernet_key_re_encrypts_variables(zonda_home: Path, monkeypatch, capsys) -> None:
    old = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", old)
    assert run(capsys, "variables", "set", "bucket", "my-bucket")[0] == 0
    before = raw_variables(f"sqlite:///{zonda_home / 'zonda.db'}")["bucket"][0]
    new = generate_key()
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", f"{new},{old}")
    code, out, _ = run(capsys, "rotate-fernet-key")
    assert code == 0 and "1 variable(s)" in out
    after = raw_variables(f"sqlite:///{zonda_home / 'zonda.db'}")["bucket"][0]
    assert after != before
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", new)  # the old key is gone: the value still reads
    assert Variable.get("bucket") == "my-bucket"


# -- lookup order ---------------------------------------------------------------------------------------------


class VaultBackend(SecretsBackend):
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get_connection(self, conn_id: str) -> None:
        return None

    def get_variable(self, key: str) -> str | None:
        self.asked.append(key)
        return self.values.get(key)


class ConnectionsOnly:
    """A backend that is not a SecretsBackend and has no get_variable: skipped for variables."""

    def get_connection(self, conn_id: str) -> None:
        return None


class BrokenBackend(SecretsBackend):
    def get_variable(self, key: str) -> str | None:
        raise RuntimeError("vault unreachable")


class SecretsPlugin:
    def __init__(self, backends: list[Any]) -> None:
        self.backends = backends

    @zonda.plugins.hookimpl
    def zonda_secrets_backends(self) -> list[Any]:
        return self.backends


def plugin_manager(*backends: Any) -> PluginManager:
    manager = PluginManager(autoload=False, environ={})
    assert manager.register(SecretsPlugin(list(backends)), "my_backend")
    return manager


def test_plugin_backend_then_environment_then_metastore(key, monkeypatch, caplog) -> None:
    settings = load_settings()
    Variable.set("shared", "from-metastore")
    Variable.set("only_db", "db-only")
    monkeypatch.setenv("ZONDA_VAR_SHARED", "from-env")
    vault = VaultBackend({"shared": "from-plugin"})
    lookup = ConnectionLookup(
        settings, plugins=plugin_manager(BrokenBackend(), ConnectionsOnly(), vault), masker=SecretsMasker()
    )
    assert lookup.find_variable("shared") == ("from-plugin", "VaultBackend")
    vault.values.clear()
    assert lookup.find_variable("shared") == ("from-env", "environment variable ZONDA_VAR_SHARED")
    monkeypatch.delenv("ZONDA_VAR_SHARED")
    value, where = lookup.find_variable("shared")
    assert value == "from-metastore" and where.startswith("metastore sqlite:///")
    assert Variable.get("only_db", lookup=lookup) == "db-only"
    assert vault.asked == ["shared", "shared", "shared", "only_db"]
    # The broken backend was skipped, with a warning.
    assert "BrokenBackend failed looking up variable 'shared'; trying the next: RuntimeError" in caplog.text


def test_environment_key_is_upper_cased_and_wins(key, monkeypatch, capsys) -> None:
    Variable.set("region", "eu-west-1")
    monkeypatch.setenv("ZONDA_VAR_REGION", "us-east-1")
    assert Variable.get("region") == "us-east-1"
    assert run(capsys, "variables", "get", "region")[1] == "us-east-1\n"
    # Deleting removes the stored value; the environment's still answers.
    assert run(capsys, "variables", "delete", "region")[0] == 0
    assert Variable.get("region") == "us-east-1"
    code, _, err = run(capsys, "variables", "delete", "region")
    assert code == 1 and "ZONDA_VAR_REGION" in err and "only its environment can remove" in err


def test_set_warns_when_a_higher_place_shadows_the_stored_value(key, monkeypatch, caplog) -> None:
    monkeypatch.setenv("ZONDA_VAR_REGION", "us-east-1")
    Variable.set("region", "eu-west-1")
    assert "environment variable ZONDA_VAR_REGION also defines it" in caplog.text


def test_nothing_is_read_until_var_is_used(zonda_home: Path) -> None:
    # A metastore no one could reach: building the context and rendering without var must not touch it.
    settings = load_settings(environ={"ZONDA__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u@127.0.0.1:1/none"})
    run = type("Run", (), {"run_id": "r", "logical_date": START, "conf": {}})()
    context = build_context(dag=None, task=None, dag_run=run, ti=None, params={}, settings=settings, plugins=None)
    renderer = TemplateRenderer([])
    assert renderer.render("{{ ds }} {{ params }}", context) == "2024-01-01 {}"
    with pytest.raises(TemplateRenderError, match="refused"):
        renderer.render("{{ var.value.anything }}", context)


def test_import_zonda_does_not_load_variables() -> None:
    code = "import sys, zonda; assert 'zonda.variable' not in sys.modules and 'zonda.secrets' not in sys.modules; zonda.Variable; assert 'zonda.secrets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- missing and bad keys -------------------------------------------------------------------------------------


def test_missing_key_raises_a_key_error_naming_the_key_and_the_fix(key) -> None:
    with pytest.raises(KeyError) as caught:
        Variable.get("not_there")
    message = str(caught.value)
    assert isinstance(caught.value, VariableNotFound)
    assert message.startswith("variable 'not_there' is not defined; looked in: secrets backends")
    assert "ZONDA_VAR_NOT_THERE" in message and "zonda variables set not_there VALUE" in message
    assert Variable.get("not_there", default_var=None) is None
    assert Variable.get("not_there", default_var={"a": 1}, deserialize_json=True) == {"a": 1}


def test_default_is_accepted_under_airflow_3s_name_too(key) -> None:
    assert Variable.get("not_there", default="d3") == "d3"
    assert Variable.get("not_there", "positional") == "positional"
    with pytest.raises(TypeError, match="default_var or default, not both"):
        Variable.get("not_there", default_var="a", default="b")


def test_a_value_encrypted_with_another_key_says_how_to_recover(key, monkeypatch, capsys) -> None:
    Variable.set("bucket", "my-bucket")
    Variable.set("db_password", "pw-value-1")
    monkeypatch.setenv("ZONDA__CORE__FERNET_KEY", generate_key())
    code, out, _ = run(capsys, "variables", "list", "-o", "json")
    rows = {row["key"]: row["value"] for row in json.loads(out)}
    assert code == 0 and rows == {"bucket": "(encrypted with a key not in [core] fernet_key)", "db_password": "***"}
    code, _, err = run(capsys, "variables", "get", "bucket")
    assert code == 1 and "cannot decrypt the value of variable 'bucket'" in err and "zonda variables set" in err


def test_missing_key_in_cli(key, capsys) -> None:
    code, out, err = run(capsys, "variables", "get", "not_there")
    assert code == 1 and out == "" and err.count("\n") == 1 and "'not_there' is not defined" in err
    assert run(capsys, "variables", "get", "not_there", "--default", "fallback")[1] == "fallback\n"
    code, _, err = run(capsys, "variables", "delete", "not_there")
    assert code == 1 and "no variable 'not_there' in the metastore" in err


def open_files_of(path: Path) -> list[str]:
    """This process's open file descriptors on ``path`` (what a pooled SQLite connection keeps open)."""
    fds = Path("/proc/self/fd")
    return [fd.name for fd in fds.iterdir() if os.path.realpath(fd) == os.path.realpath(path)]


def test_every_command_closes_the_metastore_it_opens(key, zonda_home: Path, tmp_path: Path, capsys) -> None:
    database = zonda_home / "zonda.db"
    assert database.exists() and not open_files_of(database)
    exported = tmp_path / "variables.json"
    for argv in (
        ("set", "bucket", "b"),
        ("get", "bucket"),
        ("list",),
        ("export", str(exported)),
        ("import", str(exported)),
        ("delete", "bucket"),
    ):
        code, _, err = run(capsys, "variables", *argv)
        assert code == 0, (argv, err)
        assert not open_files_of(database), argv


BAD_KEYS = ["has space", "a/b", "{{ 7 * 6 }}", ".hidden", "-dash", "é", "x" * 251, ""]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_bad_keys_are_refused_everywhere(key, capsys, bad: str) -> None:
    for call in (
        lambda: Variable.get(bad),
        lambda: Variable.get(bad, default_var="d"),
        lambda: Variable.set(bad, "v"),
        lambda: Variable.delete(bad),
    ):
        with pytest.raises(InvalidIdentifier, match="variable key"):
            call()
    for argv in (("set", "--", bad, "v"), ("get", "--", bad), ("delete", "--", bad)):
        code, _, err = run(capsys, "variables", *argv)
        assert code == 1 and "letters, digits and _ . -" in err, (argv, err)
    assert run(capsys, "variables", "list", "-o", "json")[1].strip() == "[]"


def test_writing_before_db_init_says_how_to_fix_it(zonda_home: Path) -> None:
    from zonda.exceptions import MetastoreError

    with pytest.raises(MetastoreError, match="no variable table; run `zonda db migrate`"):
        Variable.set("bucket", "b")
    assert Variable.get("bucket", default_var="d") == "d"  # reading an empty installation is fine


def test_longest_allowed_key(key) -> None:
    longest = "k" * 250
    Variable.set(longest, "v")
    assert Variable.get(longest) == "v"


def test_deserialize_json_of_text_names_the_key_not_the_value(key) -> None:
    Variable.set("db_password", "not json " + SECRET)
    with pytest.raises(InvalidVariableValue) as caught:
        Variable.get("db_password", deserialize_json=True)
    assert "'db_password' is not valid JSON" in str(caught.value) and SECRET not in str(caught.value)


# -- import / export ------------------------------------------------------------------------------------------


def test_export_then_import_round_trip(on_backend: str, tmp_path: Path, capsys) -> None:
    values = {
        "text": "plain",
        "number_text": "123",
        "quoted": '"quoted"',
        "json_object": '{"a": {"b": [1, 2]}}',
        "multi_line": "one\ntwo",
        "api_key": SECRET,
    }
    for name, value in values.items():
        Variable.set(name, value)
    path = tmp_path / "vars.json"
    code, out, err = run(capsys, "variables", "export", str(path))
    assert code == 0 and "exported 6 variable(s)" in out and "plain text" in err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    exported = json.loads(path.read_text())
    assert exported["json_object"] == {"a": {"b": [1, 2]}} and exported["number_text"] == "123"
    for name in values:
        Variable.delete(name)
    code, out, _ = run(capsys, "variables", "import", str(path))
    assert code == 0 and "imported 6 variable(s) (6 added, 0 replaced, 0 skipped)" in out
    back = {name: Variable.get(name) for name in values}
    assert back == {**values, "json_object": '{"a": {"b": [1, 2]}}'}
    assert all(val.startswith("gAAAA") for val, _, _ in raw_variables(on_backend).values())


def test_import_serializes_non_string_values_as_json(key, tmp_path: Path, capsys) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"n": 5, "flag": True, "cfg": {"x": [1]}, "s": "text"}))
    assert run(capsys, "variables", "import", str(path))[0] == 0
    assert [Variable.get(k) for k in ("n", "flag", "s")] == ["5", "true", "text"]
    assert Variable.get("cfg", deserialize_json=True) == {"x": [1]}


def test_import_existing_keys_overwrite_skip_or_fail(key, tmp_path: Path, capsys) -> None:
    Variable.set("kept", "old")
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"kept": "new", "fresh": "f"}))

    code, out, err = run(capsys, "variables", "import", str(path), "--action-on-existing-key", "fail")
    assert code == 1 and "'kept' already exist" in err and "nothing was imported" in err
    assert Variable.get("fresh", default_var=None) is None

    code, out, _ = run(capsys, "variables", "import", str(path), "--action-on-existing-key", "skip")
    assert "skipped kept" in out and "(1 added, 0 replaced, 1 skipped)" in out
    assert Variable.get("kept") == "old"

    code, out, _ = run(capsys, "variables", "import", str(path))
    assert "(0 added, 2 replaced, 0 skipped)" in out and Variable.get("kept") == "new"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not valid JSON"),
        ('["a", "b"]', "must hold one JSON object"),
        ('{"good": "v", "bad key": "v"}', "variable key 'bad key' is not allowed"),
        ('{"good": "v", "empty": null}', "'empty' has no value"),
    ],
)
def test_bad_import_files_change_nothing(key, tmp_path: Path, capsys, content: str, message: str) -> None:
    path = tmp_path / "in.json"
    path.write_text(content)
    code, _, err = run(capsys, "variables", "import", str(path))
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert Variable.get("good", default_var=None) is None
    code, _, err = run(capsys, "variables", "import", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err


# -- templates and task code ----------------------------------------------------------------------------------


def test_templates_and_task_code_in_process(key, zonda_metastore) -> None:
    Variable.set("bucket", "my-bucket")
    Variable.set("cfg", {"target": {"table": "events"}}, serialize_json=True)
    Variable.set("with-dash", "dashed")
    seen: dict[str, Any] = {}

    with DAG("var_templates", start_date=START) as dag:
        BashOperator(
            task_id="render",
            bash_command=(
                "echo {{ var.value.bucket }} {{ var.json.cfg.target.table }} "
                "{{ var.value.get('missing', 'fallback') }} {{ var.value['with-dash'] }} "
                "{{ var.json.get('missing', {'k': 'jd'}).k }}"
            ),
        )

        @task
        def use_variables() -> None:
            seen["bucket"] = Variable.get("bucket")
            seen["cfg"] = Variable.get("cfg", deserialize_json=True)
            Variable.set("written_by_task", "yes")

        use_variables()
    result = run_dag(dag, metastore=zonda_metastore)
    assert result.succeeded, [ti.error for ti in result.task_instances]
    assert "my-bucket events fallback dashed jd" in result.ti("render").log_path.read_text()
    assert seen == {"bucket": "my-bucket", "cfg": {"target": {"table": "events"}}}
    assert Variable.get("written_by_task") == "yes"


def test_missing_variable_in_a_template_fails_the_task_naming_it(key, zonda_metastore) -> None:
    with DAG("var_missing", start_date=START) as dag:
        BashOperator(task_id="render", bash_command="echo {{ var.value.not_defined }}")
    result = run_dag(dag, metastore=zonda_metastore)
    error = result.ti("render").error
    assert not result.succeeded and "variable 'not_defined' is not defined" in error
    assert "zonda variables set not_defined VALUE" in error


def test_var_exposes_no_machinery_to_templates(key) -> None:
    settings = load_settings()
    accessor = VariableAccessor(settings)
    renderer = TemplateRenderer([])
    for template in (
        "{{ var.value._lookup }}",
        "{{ var.value.get.__self__._lookup }}",
        "{{ var._lookup }}",
        "{{ var.value.__class__ }}",
    ):
        with pytest.raises(TemplateRenderError):
            renderer.render(template, {"var": accessor})
    assert [name for name in dir(accessor.value) if not name.startswith("_")] == ["get"]
    assert [name for name in dir(accessor) if not name.startswith("_")] == ["json", "value"]


def test_sensitive_variable_masked_in_task_log_and_rendered_fields(key, zonda_metastore) -> None:
    from sqlalchemy import select

    from zonda.metastore.models import TaskInstanceModel

    Variable.set("api_token", SECRET)
    Variable.set("db_credentials", json.dumps({"user": "etl", "password_text": "an0ther-secret"}))
    Variable.set("region", "eu-west-1")

    def leak() -> None:
        creds = Variable.get("db_credentials", deserialize_json=True)
        print(f"token {Variable.get('api_token')} pw {creds['password_text']} region {Variable.get('region')}")

    from zonda.operators import PythonOperator

    with DAG("var_masking", start_date=START) as dag:
        BashOperator(task_id="echo", bash_command="echo token={{ var.value.api_token }}")
        PythonOperator(task_id="leak", python_callable=leak)
    result = run_dag(dag, metastore=zonda_metastore)
    assert result.succeeded
    echo_log = result.ti("echo").log_path.read_text()
    leak_log = result.ti("leak").log_path.read_text()
    assert "token=***" in echo_log and SECRET not in echo_log
    assert "token *** pw *** region eu-west-1" in leak_log
    with zonda_metastore.session() as session:
        rendered = session.scalars(
            select(TaskInstanceModel.rendered_fields).where(TaskInstanceModel.task_id == "echo")
        ).one()
    assert json.loads(rendered)["bash_command"] == "echo token=***"


PLUGIN = """
from zonda import hookimpl


class VaultBackend:
    def get_connection(self, conn_id):
        return None

    def get_variable(self, key):
        return {"bucket": "from-vault", "vault_only": "vault-value"}.get(key)


@hookimpl
def zonda_secrets_backends():
    return [VaultBackend()]
"""

DAG_FILE = """
from datetime import datetime

from zonda import DAG, Variable, task
from zonda.operators import BashOperator

with DAG("var_dag", start_date=datetime(2024, 1, 1), schedule=None):
    BashOperator(
        task_id="render",
        bash_command=(
            'echo "bucket={{ var.value.bucket }} vault={{ var.value.vault_only }} env={{ var.value.from_env }} '
            'table={{ var.json.cfg.target.table }} token={{ var.value.api_token }}"'
        ),
    )

    @task
    def in_code():
        print("code", Variable.get("bucket"), Variable.get("cfg", deserialize_json=True)["target"]["table"])
        print("secret", Variable.get("api_token"))

    in_code()
"""


def run_zonda(home: Path, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA__", "ZONDA_VAR_"))}
    full_env.update(env, ZONDA_HOME=str(home), ZONDA__CORE__LOAD_EXAMPLES="false")
    return subprocess.run(
        [sys.executable, "-m", "zonda", *argv], env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def test_dags_test_process_plugin_backend_environment_metastore_and_masking(
    zonda_home: Path, metastore_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real ``zonda dags test`` and ``zonda tasks run`` on each database: a folder plugin's backend answers
    first, then the environment, then the metastore; templates and task code see the same values; the
    sensitive one is masked in the task logs."""
    from zonda.metastore.db import Metastore

    env = {"ZONDA__DATABASE__SQL_ALCHEMY_CONN": metastore_url, "ZONDA_VAR_FROM_ENV": "env-value"}
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "var_dag.py").write_text(DAG_FILE)
    (zonda_home / "plugins").mkdir()
    (zonda_home / "plugins" / "vault.py").write_text(PLUGIN)
    store = Metastore(metastore_url)
    store.init()
    store.dispose()
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", metastore_url)
    for argv in (
        ("variables", "set", "bucket", "from-metastore"),  # the plugin's value wins over this one
        ("variables", "set", "cfg", '{"target": {"table": "events"}}', "--json"),
        ("variables", "set", "api_token", SECRET),
    ):
        code, _, err = run(capsys, *argv)  # in this process; the Fernet key it makes goes to zonda.toml
        assert code == 0, err

    done = run_zonda(zonda_home, "dags", "test", "var_dag", env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    logs = {path.parent.name: path.read_text() for path in (zonda_home / "logs").rglob("*.log")}
    render_log, code_log = logs["task_id=render"], logs["task_id=in_code"]
    assert "bucket=from-vault vault=vault-value env=env-value table=events token=***" in render_log
    assert "code from-vault events" in code_log and "secret ***" in code_log
    assert SECRET not in output + "".join(logs.values())

    # The scheduled path: a queued run's task in a fresh task process, as a worker runs it.
    code, _, err = run(capsys, "dags", "trigger", "var_dag", "--run-id", "r1")
    assert code == 0, err
    done = run_zonda(zonda_home, "tasks", "run", "var_dag", "render", "r1", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_log,) = (zonda_home / "logs").rglob("run_id=r1/task_id=render/*.log")
    text = run_log.read_text()
    assert "bucket=from-vault vault=vault-value env=env-value table=events token=***" in text
    assert SECRET not in text + done.stdout + done.stderr


def test_sensitive_environment_variables_are_masked_once_settings_load(zonda_home: Path) -> None:
    """A task that prints its environment shows ``***`` for ``ZONDA_VAR_<SENSITIVE>``, even unread."""
    from zonda.masking import get_masker

    load_settings(environ={"ZONDA_VAR_WAREHOUSE_PASSWORD": "env-pa55word-1", "ZONDA_VAR_REGION": "eu-central-9"})
    shown = get_masker().redact_text("WAREHOUSE_PASSWORD=env-pa55word-1 REGION=eu-central-9")
    assert shown == "WAREHOUSE_PASSWORD=*** REGION=eu-central-9"


def test_sensitive_json_variable_hides_each_string_inside() -> None:
    masker = SecretsMasker()
    masker.add_variable("service_credentials", json.dumps({"user": "etl-user", "key": "pr1vate-key-text"}))
    masker.add_variable("region", "eu-central-9")  # not sensitive: not hidden
    assert masker.redact_text("etl-user pr1vate-key-text eu-central-9") == "*** *** eu-central-9"


IMPORT_ERROR_DAG = """
# a zonda DAG file
from zonda import Variable

raise RuntimeError("cannot log in with " + Variable.get("warehouse_password"))
"""


def test_sensitive_variable_is_masked_in_import_errors(zonda_home: Path) -> None:
    """A DAG file that puts a sensitive variable into its exception: the stored and shown error hide it."""
    value = "imp0rt-err0r-pw"
    env = {"ZONDA__CORE__FERNET_KEY": generate_key()}
    (zonda_home / "dags").mkdir()
    (zonda_home / "dags" / "broken.py").write_text(IMPORT_ERROR_DAG)
    # The same value, not read through Variable: only the stored variables tell the masker about it.
    (zonda_home / "dags" / "literal.py").write_text(
        '# a zonda DAG file\nraise RuntimeError("pw is " + "imp0rt-" + "err0r-pw")\n'
    )
    assert run_zonda(zonda_home, "variables", "set", "warehouse_password", value, env=env).returncode == 0
    done = run_zonda(zonda_home, "dags", "list-import-errors", "--output", "json", env=env)
    shown = done.stdout + done.stderr
    assert "cannot log in with ***" in shown and "pw is ***" in shown, shown
    assert value not in shown
