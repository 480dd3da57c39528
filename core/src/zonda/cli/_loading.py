"""Shared steps of the commands that need DAGs or the metastore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG
    from zonda.dag_processing.isolated import IsolatedDagBag
    from zonda.metastore.db import Metastore


def plugin_manager(settings: Settings) -> Any:
    from zonda.plugins.manager import PluginManager

    return PluginManager.from_settings(settings)


def prepare_task_process(settings: Settings, plugins: Any) -> None:
    """What a process that runs tasks sets up once: connections and variables are looked up with this process's
    settings and plugins (secrets backends), and hooks find their class through the installed providers."""
    from zonda.hooks.base import BaseHook
    from zonda.secrets import ConnectionLookup
    from zonda.variable import Variable

    def secret_extras(conn_type: str) -> tuple[str, ...]:
        # Manifests are read on the first connection fetched, not at start-up.
        from zonda.providers import get_providers_registry

        return get_providers_registry().secret_extras_for(conn_type)

    lookup = ConnectionLookup(settings, plugins=plugins, secret_fields_for=secret_extras)
    BaseHook.default_lookup = lookup
    Variable.default_lookup = lookup


def load_bag(settings: Settings, dag_id: str | None = None, plugins: Any = None) -> IsolatedDagBag:
    """The DAGs folder parsed in child processes, as the DAG processor parses it (isolation, timeout, memory
    limit): no DAG file is imported in this process, so none can stop or hang the command."""
    from zonda.dag_processing.isolated import IsolatedDagBag

    plugins = plugins if plugins is not None else plugin_manager(settings)
    bag = IsolatedDagBag(settings, plugins, holders=lambda: stored_dag_files(settings))
    return bag.collect_for(dag_id) if dag_id else bag.collect()


def load_dag(settings: Settings, dag_id: str, plugins: Any = None) -> DAG:
    """The DAG ``dag_id`` as an object, for the commands that run or draw it.

    Its candidate files are parsed in children first; only the file that defines the DAG (and survived its
    child: no exit, no hang, no runaway memory) is then imported here.
    """
    from pathlib import Path

    from zonda.dagbag import DagBag

    plugins = plugins if plugins is not None else plugin_manager(settings)
    path = load_bag(settings, dag_id, plugins).file_of(dag_id)
    bag = DagBag.from_settings(settings, plugins=plugins)
    bag.process_file(Path(path))
    return bag.get_dag(dag_id)


def stored_dag_files(settings: Settings) -> dict[str, str]:
    """dag id -> the file that holds it in an existing metastore (active DAGs): that file keeps the id when a
    second file defines it too. Empty without a metastore, or when it cannot be read."""
    import sys

    from zonda.metastore.db import Metastore

    try:
        metastore = Metastore.existing(settings)
        if metastore is None:
            return {}
        try:
            from zonda.operations.dags import stored_dag_files as read_stored

            return read_stored(metastore.engine)
        finally:
            metastore.dispose()
    except Exception as exc:  # listing DAGs must work without a usable metastore
        print(f"warning: cannot read the metastore's DAGs ({exc}); duplicate DAG ids go by path order", file=sys.stderr)
        return {}


def open_metastore(settings: Settings) -> Metastore:
    """The metastore, ready to use. A fresh SQLite metastore is created on first use (one-command start)."""
    from zonda.metastore.db import Metastore

    return Metastore.open(settings)


@contextmanager
def opened_metastore(settings: Settings) -> Iterator[Metastore]:
    """:func:`open_metastore` for one command, its pooled connections closed when the command is done (a
    command run in-process, as the tests do, must not leave open files or server connections behind)."""
    metastore = open_metastore(settings)
    try:
        yield metastore
    finally:
        metastore.dispose()


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    from zonda.timezone import coerce_datetime

    try:
        return coerce_datetime(value)
    except ValueError:
        raise ZondaException(
            f"cannot read {value!r} as a date; use ISO format, e.g. 2024-01-01 or 2024-01-01T06:00:00+00:00"
        ) from None


def parse_conf(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    from zonda.config import load_settings
    from zonda.identifiers import parse_conf_text

    return parse_conf_text(value, max_bytes=load_settings().get("core", "max_conf_bytes"))
