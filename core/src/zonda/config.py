"""Configuration: ``$ZONDA_HOME/zonda.toml`` overlaid by ``ZONDA__<SECTION>__<KEY>`` environment variables.

There is no global settings module. :func:`load_settings` builds an immutable :class:`Settings` when something
asks for one, so importing Zonda never reads a file, and tests get fresh settings from a temp home.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zonda.exceptions import ZondaConfigError


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on", "enabled"}:
        return True
    if text in {"0", "false", "no", "off", "disabled", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def _to_str(value: Any) -> str:
    return str(value)


def _to_int(value: Any) -> int:
    """Integers only: a TOML ``true`` or ``80.9`` is a mistake, not 1 or 80."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got the boolean {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def _to_list(value: Any) -> list[str]:
    """A TOML list, or a comma-separated string (environment variables)."""
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


@dataclass(frozen=True)
class Option:
    """One documented configuration key."""

    section: str
    key: str
    default: Any
    convert: Callable[[Any], Any]
    description: str
    aliases: tuple[str, ...] = ()
    sensitive: bool = False


def _options() -> list[Option]:
    return [
        Option("core", "dags_folder", None, _to_str, "Folder scanned for DAG files. Default: $ZONDA_HOME/dags."),
        Option("core", "plugins_folder", None, _to_str, "Folder of plugin modules. Default: $ZONDA_HOME/plugins."),
        Option(
            "core",
            "executor",
            None,
            _to_str,
            "SequentialExecutor, LocalExecutor, a plugin's or provider's executor name (e.g. CeleryExecutor), or a "
            "class path package.module:Class. Default: SequentialExecutor with SQLite, else LocalExecutor.",
        ),
        Option("core", "parallelism", 32, _to_int, "Task instances running at once in the whole installation."),
        Option(
            "local_executor",
            "tasks_per_process",
            100,
            _to_int,
            "Task instances one forked task process runs, one after another, before it exits and a fresh one "
            "is forked. A fork and the process's own metastore connection cost a short task more than the task "
            "itself. Environment variables and the working folder are reset between tasks; module globals and "
            "leaked memory are not: set 1 for a fresh process per task.",
        ),
        Option(
            "core",
            "max_active_tasks_per_dag",
            16,
            int,
            "Running task instances per DAG (DAG arg max_active_tasks).",
            aliases=("dag_concurrency",),
        ),
        Option("core", "max_active_runs_per_dag", 16, _to_int, "Active runs per DAG (DAG argument max_active_runs)."),
        Option("core", "load_examples", True, _to_bool, "Load the example DAGs shipped with Zonda."),
        Option(
            "core",
            "dags_are_paused_at_creation",
            True,
            _to_bool,
            "New DAGs start paused (as in Airflow), so a catchup DAG with an old start date fires no runs the "
            "moment its file lands; `zonda dags unpause DAG_ID` starts one. A DAG's is_paused_upon_creation wins.",
        ),
        Option("core", "dagbag_import_timeout", 30.0, float, "Seconds a DAG file may take to import."),
        Option(
            "core",
            "dagbag_import_memory_limit",
            4096,
            _to_int,
            "MiB of memory the process parsing one DAG file may add while importing it; a file that needs more "
            "gets a MemoryError as its import error. 0: no limit.",
        ),
        Option("core", "default_timezone", "utc", _to_str, "Timezone of naive datetimes in DAG files."),
        Option(
            "core",
            "fernet_key",
            "",
            _to_str,
            "Key encrypting connection secrets in the metastore.",
            sensitive=True,
        ),
        Option(
            "core",
            "max_conf_bytes",
            1024 * 1024,
            _to_int,
            "Largest conf of a DAG run, in bytes of its JSON (runs also refuse conf nested over 64 levels).",
        ),
        Option("core", "lazy_load_plugins", True, _to_bool, "Import plugins only when their hooks are needed."),
        Option("core", "blocked_plugins", [], _to_list, "Plugin (or distribution) names never to load."),
        Option(
            "core",
            "test_connection",
            "disabled",
            _to_str,
            "Allow `zonda connections test` (enabled/disabled).",
        ),
        Option(
            "database",
            "sql_alchemy_conn",
            None,
            _to_str,
            "SQLAlchemy URL of the metastore. Default: sqlite:///$ZONDA_HOME/zonda.db.",
            sensitive=True,
        ),
        Option("database", "sql_alchemy_pool_size", 5, _to_int, "Connections kept open per process (not SQLite)."),
        Option(
            "database",
            "outage_backoff_max",
            10.0,
            float,
            "Longest wait, in seconds, between reconnection attempts of the scheduler, triggerer and DAG processor "
            "while the metastore is unavailable (the wait doubles from 0.1 s up to this, with jitter); they never "
            "stop because of an outage.",
        ),
        Option(
            "database",
            "task_end_state_retry_timeout",
            120.0,
            float,
            "Seconds a task process keeps retrying to record its end state (and to load and claim its task "
            "instance) while the metastore is unavailable, so a task that ends during a database restart is "
            "recorded once the database is back instead of being run again.",
        ),
        Option("xcom", "max_size", 1024 * 1024, _to_int, "Largest XCom value in bytes, measured as stored JSON."),
        Option("logging", "base_log_folder", None, _to_str, "Folder for task logs. Default: $ZONDA_HOME/logs."),
        Option("logging", "logging_level", "INFO", _to_str, "Level of Zonda's own logging."),
        Option(
            "logging",
            "task_log_handler",
            "file",
            _to_str,
            "Where task logs go: file, a name from a plugin's zonda_task_log_handlers hook or an installed "
            "provider (e.g. elasticsearch), or a class path 'package.module:Class'.",
        ),
        Option(
            "celery",
            "broker_url",
            "redis://127.0.0.1:6379/0",
            _to_str,
            "Celery broker.",
            aliases=("celery_broker_url",),
            sensitive=True,
        ),
        Option(
            "celery",
            "result_backend",
            None,
            _to_str,
            "Celery result backend. Default: the metastore.",
            aliases=("celery_result_backend",),
            sensitive=True,
        ),
        Option("celery", "flower_port", 5555, _to_int, "Port of `zonda celery flower`."),
        Option(
            "celery",
            "flower_host",
            "127.0.0.1",
            _to_str,
            "Address `zonda celery flower` listens on; 0.0.0.0 serves every network (put TLS in front of it).",
        ),
        Option(
            "celery",
            "flower_basic_auth",
            None,
            _to_str,
            "`user:password` (comma-separated for several) Flower asks for; `zonda celery flower` refuses to "
            "start without it.",
            sensitive=True,
        ),
        Option(
            "celery",
            "standalone_worker_queues",
            "default",
            _to_str,
            "Comma-separated queues of the local worker `zonda standalone` starts with the CeleryExecutor.",
        ),
        Option(
            "celery",
            "worker_log_server_port",
            0,
            _to_int,
            "Port on which each `zonda celery worker` serves its task logs to signed requests. 0 (the default) "
            "takes any free port, so several workers share a host; each try records the address it used. Set "
            "a fixed port when a firewall must name it.",
        ),
        Option(
            "celery",
            "worker_log_server_host",
            "0.0.0.0",
            _to_str,
            "Address the worker log server listens on; requests must be signed with the installation's "
            "[webserver] secret_key, which every machine must share.",
        ),
        Option("scheduler", "task_heartbeat_interval", 2.0, float, "Seconds between a running task's heartbeats."),
        Option(
            "scheduler",
            "create_cron_data_intervals",
            False,
            _to_bool,
            "What a cron string or preset schedule means, as in Airflow 3. False: a run fires at each cron time, "
            "its logical date is that time and its data interval is empty (CronTriggerTimetable). True: runs "
            "cover the interval between two cron times and fire at its end (CronDataIntervalTimetable).",
        ),
        Option(
            "scheduler",
            "create_delta_data_intervals",
            False,
            _to_bool,
            "What a timedelta schedule means, as in Airflow 3. False: a run fires every delta from start_date and "
            "is dated by when it fires (DeltaTriggerTimetable). True: runs cover back-to-back delta-long "
            "intervals and fire at their end (DeltaDataIntervalTimetable).",
        ),
        Option(
            "scheduler",
            "task_heartbeat_timeout",
            30.0,
            float,
            "A running task whose heartbeat is older than this is declared dead and retried or failed.",
        ),
        Option(
            "scheduler",
            "task_queued_timeout",
            600.0,
            float,
            "A task instance queued this long without any worker claiming it (its message was lost on the broker, "
            "or its worker died before starting it) is queued again; each further time it waits twice as long. "
            "A late copy of the old message is harmless: the claim is a compare-and-set on state and try number.",
        ),
        Option(
            "scheduler",
            "scheduler_heartbeat_timeout",
            30.0,
            float,
            "A scheduler or triggerer whose heartbeat is older than this is considered gone.",
        ),
        Option(
            "scheduler",
            "shutdown_grace_period",
            30.0,
            float,
            "Seconds a stopping scheduler (SIGTERM, Ctrl+C) waits for running tasks to finish before it "
            "terminates them; their runs resume on the next start.",
        ),
        Option(
            "scheduler",
            "poll_interval",
            0.1,
            float,
            "Longest the scheduler sleeps when nothing happens (how soon it sees a run triggered elsewhere); "
            "an idle pass is two indexed queries. Full rescans of running runs happen at most once a second.",
        ),
        Option(
            "scheduler",
            "dag_dir_list_interval",
            300,
            _to_int,
            "Seconds between full rescans of the DAGs folder; new and changed files are seen within seconds.",
        ),
        Option("webserver", "port", 8080, _to_int, "Port of the web server (0: any free port)."),
        Option(
            "webserver",
            "base_url",
            "http://localhost:8080",
            _to_str,
            "The web server's address as users reach it; links in alerts (e-mail, notifiers) start with it.",
        ),
        Option(
            "email",
            "email_conn_id",
            "smtp_default",
            _to_str,
            "The smtp connection e-mail alerts (email_on_failure, email_on_retry) are sent through.",
        ),
        Option(
            "email",
            "from_email",
            "",
            _to_str,
            "Sender address of e-mail alerts. Default: the connection's extra from_email, else its login.",
        ),
        Option(
            "webserver",
            "host",
            "127.0.0.1",
            _to_str,
            "Address the web server listens on; 0.0.0.0 serves every network, put TLS in front of it then.",
        ),
        Option(
            "webserver",
            "secret_key",
            "",
            _to_str,
            "Key signing web sessions (32 characters or more). Default: a random key made on first start in "
            "$ZONDA_HOME/webserver_secret_key (mode 0600).",
            sensitive=True,
        ),
        Option(
            "webserver",
            "session_idle_timeout",
            1800.0,
            float,
            "Seconds without a request after which a web session ends (log in again).",
        ),
        Option(
            "webserver",
            "session_max_age",
            43200.0,
            float,
            "Seconds after login at which a web session ends, however active it is.",
        ),
        Option(
            "webserver",
            "session_user_cache",
            1.0,
            float,
            "Seconds a session's user (role, password version, grants) is reused without reading it again; a "
            "password change, deletion or new role takes effect within this time. 0 reads it on every request.",
        ),
        Option(
            "webserver",
            "cookie_secure",
            False,
            _to_bool,
            "Mark the session cookie Secure always (set it when TLS ends at a proxy in front of Zonda); "
            "it is Secure anyway on requests that arrive over TLS.",
        ),
        Option(
            "webserver",
            "login_max_failures",
            5,
            _to_int,
            "Failed logins allowed per username and per client address within login_failure_window; more get "
            "HTTP 429 until the window has passed.",
        ),
        Option("webserver", "login_failure_window", 60.0, float, "Seconds over which failed logins are counted."),
        Option(
            "webserver",
            "threads",
            32,
            _to_int,
            "Threads of the web server answering requests; each open live-update stream (one per browser tab) "
            "holds one.",
        ),
        Option(
            "webserver",
            "event_streams",
            24,
            _to_int,
            "Live-update streams (browser tabs) served at once; more get HTTP 503 with Retry-After and retry by "
            "themselves. Keep it below threads, so pages still load.",
        ),
        Option(
            "api",
            "rate_limit_per_minute",
            600,
            _to_int,
            "Requests one API token may make per minute (a burst of that many, refilled evenly); more get HTTP 429 "
            "with Retry-After. 0: no limit. Counted per web server process.",
        ),
        Option("api", "token_expiry_days", 30.0, float, "Days a new API token lasts unless --expires-in says."),
        Option("api", "token_max_expiry_days", 365.0, float, "Longest lifetime --expires-in may give an API token."),
    ]


OPTIONS: dict[tuple[str, str], Option] = {(o.section, o.key): o for o in _options()}
_ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    (o.section, alias): (o.section, o.key) for o in OPTIONS.values() for alias in o.aliases
}


#: ``Settings.get`` without a default: an undeclared key is an error.
_REQUIRED: Any = object()


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    raw = environ.get("ZONDA_HOME") or "~/zonda"
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. ``get`` returns typed values; ``source`` says where each came from."""

    home: Path
    values: Mapping[tuple[str, str], Any]
    sources: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def get(self, section: str, key: str, default: Any = _REQUIRED) -> Any:
        """The typed value of a declared key. A key no :class:`Option` declares (a provider's or a plugin's
        own, e.g. ``[logging] elasticsearch_index``) gives its raw value from the file or the environment, or
        ``default`` when unset; without ``default`` an undeclared key is an error, so core typos stay loud."""
        name = _ALIASES.get((section, key), (section, key))
        if name in self.values:
            return self.values[name]
        option = OPTIONS.get(name)
        if option is None:
            if default is not _REQUIRED:
                return default
            raise ZondaConfigError(f"unknown configuration key [{section}] {key}; see `zonda config list`")
        return self._derived_default(option)

    def source(self, section: str, key: str) -> str:
        name = _ALIASES.get((section, key), (section, key))
        return self.sources.get(name, "default")

    def items(self) -> Iterator[tuple[Option | None, str, str, Any]]:
        """Every known key plus any unknown keys from the file (plugins may define their own sections)."""
        seen = set()
        for name, option in OPTIONS.items():
            seen.add(name)
            yield option, name[0], name[1], self.get(*name)
        for name, value in self.values.items():
            if name not in seen:
                yield None, name[0], name[1], value

    def _derived_default(self, option: Option) -> Any:
        name = (option.section, option.key)
        if name == ("core", "dags_folder"):
            return str(self.home / "dags")
        if name == ("core", "plugins_folder"):
            return str(self.home / "plugins")
        if name == ("logging", "base_log_folder"):
            return str(self.home / "logs")
        if name == ("database", "sql_alchemy_conn"):
            return f"sqlite:///{self.home / 'zonda.db'}"
        if name == ("core", "executor"):
            url = str(self.get("database", "sql_alchemy_conn"))
            return "SequentialExecutor" if url.startswith("sqlite") else "LocalExecutor"
        return option.default

    # Convenience accessors for the keys read most often.
    @property
    def dags_folder(self) -> Path:
        return Path(self.get("core", "dags_folder")).expanduser()

    @property
    def plugins_folder(self) -> Path:
        return Path(self.get("core", "plugins_folder")).expanduser()

    @property
    def log_folder(self) -> Path:
        return Path(self.get("logging", "base_log_folder")).expanduser()

    @property
    def sql_alchemy_conn(self) -> str:
        return str(self.get("database", "sql_alchemy_conn"))

    def with_overrides(self, overrides: Mapping[tuple[str, str], Any]) -> Settings:
        """A copy with some keys replaced (tests and embedded use)."""
        values = dict(self.values)
        sources = dict(self.sources)
        for (section, key), raw in overrides.items():
            name = _ALIASES.get((section, key), (section, key))
            values[name] = _convert(name, raw, "override")
            sources[name] = "override"
        return Settings(home=self.home, values=values, sources=sources)


def _convert(name: tuple[str, str], raw: Any, where: str) -> Any:
    option = OPTIONS.get(name)
    if option is None:
        return raw
    try:
        return option.convert(raw)
    except (TypeError, ValueError) as exc:
        raise ZondaConfigError(f"[{name[0]}] {name[1]} from {where}: {exc}") from None


def load_settings(home: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``zonda.toml`` from the home folder and overlay ``ZONDA__SECTION__KEY`` variables."""
    environ = os.environ if environ is None else environ
    home_path = Path(home).expanduser().resolve() if home is not None else default_home(environ)
    values: dict[tuple[str, str], Any] = {}
    sources: dict[tuple[str, str], str] = {}
    config_file = home_path / "zonda.toml"
    if config_file.exists():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ZondaConfigError(f"{config_file} is not valid TOML: {exc}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ZondaConfigError(
                    f"{config_file}: top-level key {section!r} must be a [section] table, e.g. [core]"
                )
            for key, raw in table.items():
                name = _ALIASES.get((section, key), (section, key))
                values[name] = _convert(name, raw, str(config_file))
                sources[name] = str(config_file)
    for var, raw in environ.items():
        if not var.startswith("ZONDA__"):
            continue
        parts = var[len("ZONDA__") :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            continue
        name = _ALIASES.get((parts[0], parts[1]), (parts[0], parts[1]))
        values[name] = _convert(name, raw, f"${var}")
        sources[name] = f"env {var}"
    settings = Settings(home=home_path, values=values, sources=sources)
    from zonda.masking import mask_configuration

    # Every process loads its settings before it runs anything: from here on its logs hide them.
    mask_configuration(settings, environ)
    if ("core", "fernet_key") in values and sources.get(("core", "fernet_key")) == str(config_file):
        warn_if_shared(config_file)
    return settings


def sensitive_values(settings: Settings) -> Iterator[Any]:
    """The values of every sensitive key: declared so (:attr:`Option.sensitive`) or named like a secret
    (``[my_plugin] api_token``)."""
    from zonda.masking import is_sensitive_name

    for option, _section, key, value in settings.items():
        if value in (None, ""):
            continue
        if (option is not None and option.sensitive) or is_sensitive_name(key):
            yield value


_warned_shared: set[Path] = set()


def warn_if_shared(config_file: Path) -> None:
    """One warning per process when ``zonda.toml`` holds the Fernet key and others may read or write it."""
    from zonda.private_files import is_shared

    if config_file in _warned_shared or not is_shared(config_file):
        return
    _warned_shared.add(config_file)
    import logging

    logging.getLogger("zonda.config").warning(
        "%s holds [core] fernet_key but other users may read or write it; run: chmod 600 %s",
        config_file,
        config_file,
    )
