"""Connections and variables from environment variables: ``ZONDA_CONN_<CONN_ID>`` (a URI or a JSON object) and
``ZONDA_VAR_<KEY>`` (the value as it is)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from zonda.secrets.base import SecretsBackend

if TYPE_CHECKING:
    from zonda.connection import Connection

CONN_PREFIX = "ZONDA_CONN_"
VAR_PREFIX = "ZONDA_VAR_"


class EnvironmentVariablesBackend(SecretsBackend):
    """``ZONDA_CONN_MY_DB=postgres://user:pass@host:5432/db`` defines connection ``my_db`` (ids are uppercased,
    as in Airflow). ``environ`` defaults to ``os.environ``, read at each lookup."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @staticmethod
    def variable_name(conn_id: str) -> str:
        return CONN_PREFIX + conn_id.upper()

    def get_connection(self, conn_id: str) -> Connection | None:
        from zonda.connection import Connection, InvalidConnection
        from zonda.identifiers import validate_conn_id

        name = self.variable_name(validate_conn_id(conn_id))
        value = self.environ.get(name)
        if value is None:
            return None
        try:
            return Connection.parse(value, conn_id=conn_id)
        except InvalidConnection as exc:
            raise InvalidConnection(f"environment variable {name}: {exc}") from None

    @staticmethod
    def variable_env_name(key: str) -> str:
        """``ZONDA_VAR_<KEY>``: the environment variable that defines variable ``key`` (upper-cased)."""
        return VAR_PREFIX + key.upper()

    def get_variable(self, key: str) -> str | None:
        return self.environ.get(self.variable_env_name(key))

    def describe(self, conn_id: str) -> str:
        return f"environment variable {self.variable_name(conn_id)}"
