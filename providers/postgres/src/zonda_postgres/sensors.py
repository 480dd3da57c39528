"""``SqlSensor``: wait until a SQL query's first cell says so (Airflow's semantics)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException, ZondaFailException
from zonda.sensors.base import BaseSensor
from zonda_postgres.hooks import PostgresHook

if TYPE_CHECKING:
    from zonda.context import Context


class SqlSensor(BaseSensor):
    """Run ``sql`` each poke and look at ``selector(first_row)`` (default: its first cell).

    - no row: keep waiting, or fail with ``fail_on_empty=True``;
    - ``failure(value)`` true: fail at once (:class:`~zonda.exceptions.ZondaFailException`, no retry);
    - ``success(value)``: done when it returns true; without it, done when the value is truthy.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("sql", "parameters", "conn_id")
    template_ext: ClassVar[tuple[str, ...]] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "parameters": "json"}
    ui_color: ClassVar[str] = "#7c7287"

    def __init__(
        self,
        *,
        sql: str,
        conn_id: str = PostgresHook.default_conn_name,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        success: Callable[[Any], Any] | None = None,
        failure: Callable[[Any], Any] | None = None,
        selector: Callable[[Any], Any] = itemgetter(0),
        fail_on_empty: bool = False,
        database: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("success", success), ("failure", failure)):
            if value is not None and not callable(value):
                raise ZondaException(f"SqlSensor {self.task_id!r}: {name} must be callable, got {value!r}")
        self.sql = sql
        self.conn_id = conn_id
        self.parameters = parameters
        self.success = success
        self.failure = failure
        self.selector = selector
        self.fail_on_empty = fail_on_empty
        self.database = database

    def _get_hook(self) -> PostgresHook:
        return PostgresHook(postgres_conn_id=self.conn_id, database=self.database)

    def poke(self, context: Context) -> bool:
        self.log.info("Poking: %s (with parameters %s)", self.sql, self.parameters)
        records = self._get_hook().get_records(self.sql, self.parameters)
        if not records:
            if self.fail_on_empty:
                raise ZondaFailException("No rows returned, raising as per fail_on_empty flag")
            return False
        value = self.selector(records[0])
        if self.failure is not None and self.failure(value):
            raise ZondaFailException(f"Failure criteria met: failure({value!r}) returned True")
        if self.success is not None:
            return bool(self.success(value))
        return bool(value)
