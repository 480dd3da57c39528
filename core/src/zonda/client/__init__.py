"""The Python client of Zonda's REST API: :class:`ZondaClient`, its typed results, and :class:`ZondaApiError`."""

from __future__ import annotations

from zonda.client.api import TOKEN_ENV, ZondaClient
from zonda.client.errors import ZondaApiError
from zonda.client.models import Dag, DagRun, Page, TaskInstance

__all__ = ["TOKEN_ENV", "Dag", "DagRun", "Page", "TaskInstance", "ZondaApiError", "ZondaClient"]
