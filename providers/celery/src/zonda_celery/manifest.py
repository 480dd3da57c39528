"""The manifest of Zonda's celery provider: names and dotted paths only.

Discovery reads this dict through the ``zonda.providers`` entry point, so this module must stay data: it imports
nothing (no Celery). ``[core] executor = CeleryExecutor`` finds the executor through ``executors``.
"""

from __future__ import annotations

from typing import Any

manifest: dict[str, Any] = {
    "name": "celery",
    "package": "zonda-provider-celery",
    "version": "0.1.0",
    "description": "Celery: the CeleryExecutor runs tasks on workers on any machine (`zonda celery worker`).",
    "zonda_versions": ">=0.1,<1",
    "connection_types": [],
    "hooks": [],
    "operators": [],
    "sensors": [],
    "triggers": [],
    "transfers": [],
    "log_handlers": [],
    "executors": ["zonda_celery.executor:CeleryExecutor"],
}
