"""``zonda standalone``: a whole installation in one process, for trying Zonda and for development.

It initialises the metastore if needed, then runs the DAG processor, the scheduler (LocalExecutor unless
``core.executor`` is set), the triggerer and the web server (on ``[webserver] port``; the user ``admin`` is made
on first start, its password shown once and kept in ``$ZONDA_HOME/standalone_admin_password.txt``), with the
example DAGs unless ``core.load_examples`` is set. New DAGs, the examples too, start paused as in Airflow
(``core.dags_are_paused_at_creation``); the banner says how to unpause one. An executor whose tasks run in
workers of their own starts one locally (``core.executor = CeleryExecutor``: a ``zonda celery worker``). With the
examples on, providers'
``standalone_services`` start too (the Elasticsearch provider's local server for its example DAG when no
``elasticsearch_default`` connection is configured).
SIGTERM or Ctrl+C stops everything gracefully, task processes and what they started included (``python3 dev.py
standalone`` *is* this process, so a signal to its pid does the same).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from zonda.cli._common import settings

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.metastore.db import Metastore


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_standalone)
    parser.add_argument(
        "--no-triggerer", action="store_true", help="Do not run the triggerer (deferred tasks wait for one)"
    )
    parser.add_argument("--port", "-p", type=int, help="Port of the web server (default: [webserver] port, 8080)")


def standalone_settings(current: Settings) -> Settings:
    """LocalExecutor and the example DAGs, unless the user chose otherwise (zonda.toml or environment)."""
    overrides: dict[tuple[str, str], Any] = {}
    if current.source("core", "executor") == "default":
        overrides[("core", "executor")] = "LocalExecutor"
    if current.source("core", "load_examples") == "default":
        overrides[("core", "load_examples")] = True
    return current.with_overrides(overrides) if overrides else current


def start_provider_services(current: Settings, stack: contextlib.ExitStack) -> list[str]:
    """Enter every ``standalone_services`` entry of the installed providers' manifests (each a
    ``function(settings) -> context manager | None``) on ``stack``; what each serves, for the banner.

    A service that fails to start is reported and skipped: the rest of the installation runs regardless."""
    from zonda.providers import get_providers_registry
    from zonda.providers.registry import import_dotted_path

    started: list[str] = []
    for info in get_providers_registry().providers.values():
        for path in info.standalone_services:
            try:
                service = import_dotted_path(path)(current)
                if service is not None:
                    started.append(str(stack.enter_context(service)))
            except Exception as exc:
                message = f"provider {info.name}: {path} did not start: {exc}"
                print(f"warning: {message}", file=sys.stderr, flush=True)
                started.append(f"not started: {message}")
    return started


def _paused_lines(current: Settings, dag_id: str) -> list[str]:
    """How to unpause a DAG, when new DAGs (the examples included) start paused: a trigger alone would queue a
    run that never starts."""
    if not current.get("core", "dags_are_paused_at_creation"):
        return []
    return [
        "New DAGs start paused ([core] dags_are_paused_at_creation). Unpause one with its toggle in the web UI or:",
        f"  zonda dags unpause {dag_id}",
    ]


def start_standalone_workers(current: Settings, stack: contextlib.ExitStack) -> list[str]:
    """The executor's local workers, when its tasks run in workers of their own (CeleryExecutor: one ``zonda
    celery worker``), entered on ``stack`` so they stop with everything else; what they are, for the banner."""
    from zonda.cli._loading import plugin_manager
    from zonda.executors.resolution import resolve_executor

    _, executor_class = resolve_executor(str(current.get("core", "executor")), plugin_manager(current))
    workers = executor_class.standalone_workers(current)
    return [] if workers is None else [str(stack.enter_context(workers))]


def _initialise(metastore: Metastore) -> bool:
    """Bring the metastore to the current schema (created when empty); whether it was empty."""
    try:
        fresh = metastore.current_revision() is None
        metastore.ensure_ready(auto_init=True)
    finally:
        metastore.dispose()
    return fresh


def _standalone(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        return _run_standalone(args, stack)


def _run_standalone(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    from zonda.cli._loading import plugin_manager
    from zonda.metastore.db import Metastore
    from zonda.metastore.retry import OutageGuard
    from zonda.services import configure_logging, run_scheduler

    current = standalone_settings(settings())
    configure_logging(current)
    metastore = Metastore.from_settings(current)
    # Started while the metastore is down (a host booting): wait for it rather than fail.
    guard = OutageGuard("standalone", max_delay=float(current.get("database", "outage_backoff_max")))
    fresh = guard.until_available(lambda: _initialise(metastore), url=current.sql_alchemy_conn)
    if fresh:
        print(f"Initialized the metastore {metastore.redacted_url}.", flush=True)
    from zonda.fernet_bootstrap import ensure_fernet_key

    ensure_fernet_key(current)  # before any service starts: every process then reads the same key
    from zonda.web.secret_key import ensure_secret_key
    from zonda.web.standalone_admin import ensure_standalone_admin

    ensure_secret_key(current)  # a refused key stops here, before anything starts
    metastore = Metastore.from_settings(current)
    try:
        admin = guard.until_available(
            lambda: ensure_standalone_admin(metastore.engine, current.home), url=current.sql_alchemy_conn
        )
    finally:
        metastore.dispose()
    web: dict[str, Any] = {}

    def web_server() -> Any:
        from zonda.web.launch import start_web_server

        web["server"] = start_web_server(current, port=args.port)
        return web["server"].serve

    # Before the scheduler forks its workers: task processes inherit what the services set up.
    services = start_provider_services(current, stack) if current.get("core", "load_examples") else []
    services.extend(start_standalone_workers(current, stack))

    def banner(scheduler: Any) -> None:
        examples = "on" if current.get("core", "load_examples") else "off"
        dag_id = "user_processing" if examples == "on" else "DAG_ID"
        lines = [
            "",
            "Zonda standalone is running (DAG processor, scheduler"
            + ("" if args.no_triggerer else ", triggerer")
            + ", web server). Ctrl+C or SIGTERM stops it.",
            f"  home:      {current.home}",
            f"  metastore: {metastore.redacted_url}",
            f"  executor:  {type(scheduler.executor).__name__} (parallelism {current.get('core', 'parallelism')})",
            f"  DAGs:      {current.dags_folder} (example DAGs {examples})",
            f"  web UI:    {web['server'].url}",
            f"             {admin.banner_line()}",
            *(f"  service:   {line}" for line in services),
            *_paused_lines(current, dag_id),
            "Trigger a DAG from another terminal:",
            f"  zonda dags trigger {dag_id}"
            + ("        # or any id from `zonda dags list`" if examples == "on" else ""),
            f"  zonda dags list-runs {dag_id}",
            "",
        ]
        print("\n".join(lines), flush=True)
        sys.stdout.flush()

    run_scheduler(
        current,
        plugins=plugin_manager(current),
        dag_processor=True,
        triggerer=not args.no_triggerer,
        on_started=banner,
        extra_services=[("webserver", web_server)],
    )
    print("Zonda standalone stopped.", flush=True)
    return 0
