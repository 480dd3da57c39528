"""Shared steps of the commands that need DAGs or the metastore."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG
    from zonda.dagbag import DagBag
    from zonda.metastore.db import Metastore


def plugin_manager(settings: Settings) -> Any:
    from zonda.plugins.manager import PluginManager

    return PluginManager.from_settings(settings)


def prepare_task_process(settings: Settings, plugins: Any) -> None:
    """What a process that runs tasks sets up once: connections are looked up with this process's settings and
    plugins (secrets backends), and hooks find their class through the installed providers."""
    from zonda.hooks.base import BaseHook
    from zonda.secrets import ConnectionLookup

    def secret_extras(conn_type: str) -> tuple[str, ...]:
        # Manifests are read on the first connection fetched, not at start-up.
        from zonda.providers import get_providers_registry

        return get_providers_registry().secret_extras_for(conn_type)

    BaseHook.default_lookup = ConnectionLookup(settings, plugins=plugins, secret_fields_for=secret_extras)


def load_bag(settings: Settings, dag_id: str | None = None, plugins: Any = None) -> DagBag:
    from zonda.dagbag import DagBag

    bag = DagBag.from_settings(settings, plugins=plugins if plugins is not None else plugin_manager(settings))
    return bag.collect_for(dag_id) if dag_id else bag.collect()


def load_dag(settings: Settings, dag_id: str, plugins: Any = None) -> DAG:
    return load_bag(settings, dag_id, plugins).get_dag(dag_id)


def open_metastore(settings: Settings) -> Metastore:
    """The metastore, ready to use. A fresh SQLite metastore is created on first use (one-command start)."""
    from zonda.metastore.db import Metastore

    return Metastore.open(settings)


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
