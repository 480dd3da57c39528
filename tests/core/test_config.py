"""Configuration: defaults, zonda.toml, ZONDA__SECTION__KEY overrides, aliases, errors, derived defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from zonda.config import OPTIONS, load_settings
from zonda.exceptions import ZondaConfigError


def write_toml(home: Path, text: str) -> Path:
    path = home / "zonda.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(zonda_home):
    settings = load_settings()
    assert settings.home == zonda_home.resolve()
    assert settings.get("core", "parallelism") == 32
    assert settings.get("core", "max_active_tasks_per_dag") == 16
    assert settings.get("core", "max_active_runs_per_dag") == 16
    assert settings.get("core", "dagbag_import_timeout") == 30.0
    assert settings.get("celery", "broker_url") == "redis://127.0.0.1:6379/0"
    assert settings.get("celery", "flower_port") == 5555
    assert settings.get("scheduler", "dag_dir_list_interval") == 300
    assert settings.get("webserver", "port") == 8080
    assert settings.source("core", "parallelism") == "default"


def test_derived_defaults_live_under_zonda_home(zonda_home):
    settings = load_settings()
    home = zonda_home.resolve()
    assert settings.sql_alchemy_conn == f"sqlite:///{home / 'zonda.db'}"
    assert settings.dags_folder == home / "dags"
    assert settings.plugins_folder == home / "plugins"
    assert settings.log_folder == home / "logs"
    assert settings.get("core", "executor") == "SequentialExecutor"


def test_home_defaults_to_tilde_zonda(monkeypatch):
    monkeypatch.delenv("ZONDA_HOME", raising=False)
    settings = load_settings(environ={})
    assert settings.home == (Path.home() / "zonda").resolve()


def test_explicit_home_and_environ_arguments(tmp_path):
    home = tmp_path / "elsewhere"
    home.mkdir()
    write_toml(home, "[core]\nparallelism = 3\n")
    settings = load_settings(home, environ={"ZONDA__WEBSERVER__PORT": "9999"})
    assert settings.get("core", "parallelism") == 3
    assert settings.get("webserver", "port") == 9999


def test_executor_is_local_for_postgres_url(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u@db:5432/zonda")
    assert load_settings().get("core", "executor") == "LocalExecutor"


def test_executor_is_local_for_postgres_url_in_toml(zonda_home):
    write_toml(zonda_home, '[database]\nsql_alchemy_conn = "postgresql+psycopg://u@db/zonda"\n')
    assert load_settings().get("core", "executor") == "LocalExecutor"


def test_explicit_executor_wins_over_derived(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u@db:5432/zonda")
    monkeypatch.setenv("ZONDA__CORE__EXECUTOR", "CeleryExecutor")
    assert load_settings().get("core", "executor") == "CeleryExecutor"


def test_toml_file_overrides_defaults(zonda_home):
    path = write_toml(
        zonda_home,
        """
[core]
parallelism = 8
load_examples = false
dags_folder = "/srv/dags"

[webserver]
port = 9090
""",
    )
    settings = load_settings()
    assert settings.get("core", "parallelism") == 8
    assert settings.get("core", "load_examples") is False
    assert settings.dags_folder == Path("/srv/dags")
    assert settings.get("webserver", "port") == 9090
    assert settings.source("core", "parallelism") == str(path)


def test_env_overrides_file_overrides_default(zonda_home, monkeypatch):
    write_toml(zonda_home, "[core]\nparallelism = 8\nmax_active_runs_per_dag = 4\n")
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "7")
    settings = load_settings()
    assert settings.get("core", "parallelism") == 7  # env
    assert settings.get("core", "max_active_runs_per_dag") == 4  # file
    assert settings.get("core", "max_active_tasks_per_dag") == 16  # default
    assert settings.source("core", "parallelism") == "env ZONDA__CORE__PARALLELISM"
    assert settings.source("core", "max_active_tasks_per_dag") == "default"


def test_env_values_are_converted(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("ZONDA__CORE__DAGBAG_IMPORT_TIMEOUT", "1")
    monkeypatch.setenv("ZONDA__XCOM__MAX_SIZE", "2048")
    settings = load_settings()
    assert settings.get("core", "load_examples") is False
    assert settings.get("core", "dagbag_import_timeout") == 1.0
    assert settings.get("xcom", "max_size") == 2048


def test_env_variable_names_are_case_insensitive_in_key(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__Core__Parallelism", "5")
    assert load_settings().get("core", "parallelism") == 5


def test_alias_dag_concurrency_in_file_and_env(zonda_home, monkeypatch):
    write_toml(zonda_home, "[core]\ndag_concurrency = 3\n")
    settings = load_settings()
    assert settings.get("core", "max_active_tasks_per_dag") == 3
    assert settings.get("core", "dag_concurrency") == 3
    monkeypatch.setenv("ZONDA__CORE__DAG_CONCURRENCY", "6")
    assert load_settings().get("core", "max_active_tasks_per_dag") == 6


def test_alias_celery_broker_and_result_backend(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__CELERY__CELERY_BROKER_URL", "redis://broker:6379/1")
    write_toml(zonda_home, '[celery]\ncelery_result_backend = "db+postgresql://u@db/r"\n')
    settings = load_settings()
    assert settings.get("celery", "broker_url") == "redis://broker:6379/1"
    assert settings.get("celery", "celery_broker_url") == "redis://broker:6379/1"
    assert settings.get("celery", "result_backend") == "db+postgresql://u@db/r"


def test_bad_toml_names_the_file(zonda_home):
    path = write_toml(zonda_home, "[core\nparallelism = 8\n")
    with pytest.raises(ZondaConfigError) as info:
        load_settings()
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)


def test_top_level_key_outside_a_section_is_an_error(zonda_home):
    write_toml(zonda_home, "parallelism = 8\n")
    with pytest.raises(ZondaConfigError, match=r"\[section\]"):
        load_settings()


def test_bad_int_in_env_names_key_and_variable(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__PARALLELISM", "lots")
    with pytest.raises(ZondaConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "[core] parallelism" in message
    assert "ZONDA__CORE__PARALLELISM" in message
    assert "lots" in message


def test_bad_int_in_file_names_key_and_file(zonda_home):
    path = write_toml(zonda_home, '[webserver]\nport = "eighty"\n')
    with pytest.raises(ZondaConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "[webserver] port" in message
    assert str(path) in message


def test_bad_bool_names_the_key(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE__LOAD_EXAMPLES", "maybe")
    with pytest.raises(ZondaConfigError, match=r"\[core\] load_examples"):
        load_settings()


def test_unknown_key_get_is_a_clear_error(zonda_home):
    with pytest.raises(ZondaConfigError) as info:
        load_settings().get("core", "no_such_key")
    assert "no_such_key" in str(info.value)
    assert "zonda config list" in str(info.value)


def test_unknown_keys_from_file_are_kept_for_plugins(zonda_home):
    write_toml(zonda_home, '[my_plugin]\ncolour = "blue"\n')
    settings = load_settings()
    assert settings.get("my_plugin", "colour") == "blue"
    listed = {(section, key): value for _, section, key, value in settings.items()}
    assert listed[("my_plugin", "colour")] == "blue"
    assert ("core", "parallelism") in listed


def test_malformed_env_variables_are_ignored(zonda_home, monkeypatch):
    monkeypatch.setenv("ZONDA__CORE", "x")
    monkeypatch.setenv("ZONDA__CORE__A__B", "x")
    monkeypatch.setenv("ZONDA_HOME_EXTRA", "x")
    assert load_settings().get("core", "parallelism") == 32


def test_with_overrides_returns_a_copy(zonda_home):
    settings = load_settings()
    changed = settings.with_overrides({("core", "dag_concurrency"): "2"})
    assert changed.get("core", "max_active_tasks_per_dag") == 2
    assert changed.source("core", "max_active_tasks_per_dag") == "override"
    assert settings.get("core", "max_active_tasks_per_dag") == 16


def test_loading_does_not_create_files(zonda_home):
    load_settings().get("database", "sql_alchemy_conn")
    assert list(zonda_home.iterdir()) == []


def test_sensitive_options_are_marked():
    for name in [("core", "fernet_key"), ("database", "sql_alchemy_conn"), ("webserver", "secret_key")]:
        assert OPTIONS[name].sensitive, name
    assert not OPTIONS[("core", "parallelism")].sensitive


@pytest.mark.parametrize("value", ["true", "80.9"])
def test_non_integer_toml_value_for_int_key_is_an_error(zonda_home, value):
    write_toml(zonda_home, f"[webserver]\nport = {value}\n")
    with pytest.raises(ZondaConfigError, match=r"\[webserver\] port"):
        load_settings()
