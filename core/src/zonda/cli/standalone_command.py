"""``zonda standalone``: a whole installation in one process, for trying Zonda and for development.

It initialises the metastore if needed, then runs the DAG processor, the scheduler (LocalExecutor unless
``core.executor`` is set) and the triggerer, with the example DAGs unless ``core.load_examples`` is set.
SIGTERM or Ctrl+C stops everything gracefully.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from zonda.cli._common import settings

if TYPE_CHECKING:
    from zonda.config import Settings


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_standalone)
    parser.add_argument(
        "--no-triggerer", action="store_true", help="Do not run the triggerer (deferred tasks wait for one)"
    )


def standalone_settings(current: Settings) -> Settings:
    """LocalExecutor and the example DAGs, unless the user chose otherwise (zonda.toml or environment)."""
    overrides: dict[tuple[str, str], Any] = {}
    if current.source("core", "executor") == "default":
        overrides[("core", "executor")] = "LocalExecutor"
    if current.source("core", "load_examples") == "default":
        overrides[("core", "load_examples")] = True
    return current.with_overrides(overrides) if overrides else current


def _standalone(args: argparse.Namespace) -> int:
    from zonda.cli._loading import plugin_manager
    from zonda.metastore.db import Metastore
    from zonda.services import configure_logging, run_scheduler

    current = standalone_settings(settings())
    configure_logging(current)
    metastore = Metastore.from_settings(current)
    try:
        fresh = metastore.current_revision() is None
        metastore.ensure_ready(auto_init=True)
    finally:
        metastore.dispose()
    if fresh:
        print(f"Initialized the metastore {metastore.redacted_url}.", flush=True)

    def banner(scheduler: Any) -> None:
        examples = "on" if current.get("core", "load_examples") else "off"
        dag_id = "user_processing" if examples == "on" else "DAG_ID"
        lines = [
            "",
            "Zonda standalone is running (DAG processor, scheduler"
            + ("" if args.no_triggerer else ", triggerer")
            + "). Ctrl+C or SIGTERM stops it.",
            f"  home:      {current.home}",
            f"  metastore: {metastore.redacted_url}",
            f"  executor:  {type(scheduler.executor).__name__} (parallelism {current.get('core', 'parallelism')})",
            f"  DAGs:      {current.dags_folder} (example DAGs {examples})",
            "  web UI:    not yet; the web server arrives with the web UI issue",
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
    )
    print("Zonda standalone stopped.", flush=True)
    return 0
