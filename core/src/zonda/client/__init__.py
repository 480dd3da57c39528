"""The Python client of Zonda's REST API: :class:`ZondaClient`, its typed results, and :class:`ZondaApiError`."""

from __future__ import annotations

from zonda.client.api import TOKEN_ENV, ZondaClient
from zonda.client.errors import ZondaApiError
from zonda.client.models import FINISHED_RUN_STATES, Dag, DagRun, Page, TaskInstance

__all__ = ["FINISHED_RUN_STATES", "TOKEN_ENV", "Dag", "DagRun", "Page", "TaskInstance", "ZondaApiError", "ZondaClient"]
