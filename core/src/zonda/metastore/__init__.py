"""The metastore: Zonda's database of DAGs, runs, task instances, XComs, connections, variables and import errors.

``import zonda.metastore`` stays cheap (no SQLAlchemy, no Alembic): the names below load on first access.
:data:`HEAD_REVISION` is the schema revision this Zonda needs; a test keeps it equal to the Alembic head.

    from zonda.metastore import Metastore
    store = Metastore.from_settings(settings)
    store.ensure_ready(auto_init=True)
    with store.session() as session:
        ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zonda.metastore.base import Base
    from zonda.metastore.db import Metastore
    from zonda.metastore.engine import make_engine, redact_url
    from zonda.metastore.models import (
        ConnectionModel,
        DagModel,
        DagRunModel,
        ImportErrorModel,
        SerializedDagModel,
        TaskInstanceModel,
        VariableModel,
        XComModel,
    )
    from zonda.metastore.types import LongText, UtcDateTime

#: The Alembic revision of the newest migration (``migrations/versions/<revision>_*.py``).
HEAD_REVISION = "0016"

_LAZY: dict[str, str] = {
    "Base": "zonda.metastore.base",
    "LongText": "zonda.metastore.types",
    "UtcDateTime": "zonda.metastore.types",
    "Metastore": "zonda.metastore.db",
    "make_engine": "zonda.metastore.engine",
    "redact_url": "zonda.metastore.engine",
    "ConnectionModel": "zonda.metastore.models",
    "DagModel": "zonda.metastore.models",
    "DagRunModel": "zonda.metastore.models",
    "ImportErrorModel": "zonda.metastore.models",
    "SerializedDagModel": "zonda.metastore.models",
    "TaskInstanceModel": "zonda.metastore.models",
    "VariableModel": "zonda.metastore.models",
    "XComModel": "zonda.metastore.models",
}

__all__ = [
    "HEAD_REVISION",
    "Base",
    "ConnectionModel",
    "DagModel",
    "DagRunModel",
    "ImportErrorModel",
    "LongText",
    "Metastore",
    "SerializedDagModel",
    "TaskInstanceModel",
    "UtcDateTime",
    "VariableModel",
    "XComModel",
    "make_engine",
    "redact_url",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
