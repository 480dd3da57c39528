"""``SQLExecuteQueryOperator``: run SQL on PostgreSQL and push the result to XCom.

``sql`` is a string, a list of strings or a templated ``.sql`` file (``template_ext``). Rows reach XCom as lists
(JSON-safe); a result over ``[xcom] max_size`` fails with the XCom size error plus a pointer to the transfer
operators, which stream rows to a table or file instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import XComSizeError
from zonda.operators.base import BaseOperator
from zonda_postgres.hooks import PostgresHook, fetch_all_handler

if TYPE_CHECKING:
    from zonda.context import Context

TRANSFER_HINT = (
    " This result comes from a SQL query: to move many rows, use a transfer operator (a subclass of "
    "zonda.transfers.BaseTransferOperator, which streams PostgresHook.iter_batches batch by batch into a table "
    "or file) or write the result with COPY (PostgresHook.bulk_dump / copy_expert), and push only its location."
)


def _json_safe(value: Any) -> Any:
    """Rows (tuples, psycopg Row objects) as lists, recursively."""
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


class SQLExecuteQueryOperator(BaseOperator):
    """Run ``sql`` on the connection ``conn_id`` (a ``postgres`` connection).

    - ``parameters``: bound by psycopg (``%s`` / ``%(name)s``), never formatted into the text.
    - ``handler``: applied to the cursor after each statement (default: fetch all rows); None pushes nothing.
    - ``split_statements``: split a string on ``;`` (outside quotes) and run each statement.
    - ``return_last``: push only the last statement's result (else one result per statement).
    - ``autocommit``: commit each statement on its own instead of one transaction.
    - ``database``: overrides the connection's database.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("sql", "parameters", "conn_id", "database")
    template_ext: ClassVar[tuple[str, ...]] = (".sql", ".json")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "parameters": "json"}
    ui_color: ClassVar[str] = "#cdaaed"

    def __init__(
        self,
        *,
        sql: str | Iterable[str],
        conn_id: str = PostgresHook.default_conn_name,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        handler: Callable[[Any], Any] | None = fetch_all_handler,
        split_statements: bool = False,
        return_last: bool = True,
        autocommit: bool = False,
        database: str | None = None,
        show_return_value_in_logs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql if isinstance(sql, str) else list(sql)
        self.conn_id = conn_id
        self.parameters = parameters
        self.handler = handler
        self.split_statements = split_statements
        self.return_last = return_last
        self.autocommit = autocommit
        self.database = database
        self.show_return_value_in_logs = show_return_value_in_logs

    def get_db_hook(self) -> PostgresHook:
        return PostgresHook(postgres_conn_id=self.conn_id, database=self.database)

    def execute(self, context: Context) -> Any:
        self.log.info("Executing: %s", self.sql)
        result = self.get_db_hook().run(
            self.sql,
            parameters=self.parameters,
            autocommit=self.autocommit,
            handler=self.handler,
            split_statements=self.split_statements,
            return_last=self.return_last,
        )
        if self.handler is None:
            return None
        result = _json_safe(result)
        if self.show_return_value_in_logs:
            self.log.info("Result: %s", result)
        if getattr(self, "do_xcom_push", True):
            self._check_xcom_size(result, context)
        return result

    def _check_xcom_size(self, value: Any, context: Context) -> None:
        """Fail early, with a hint towards transfers, when ``value`` would not fit in XCom."""
        from zonda.xcom import encode_value

        settings = context.get("conf") if hasattr(context, "get") else None
        try:
            max_size = int(settings.get("xcom", "max_size")) if settings is not None else 1024 * 1024
        except Exception:
            return  # no readable limit here: the runner still enforces its own
        try:
            encode_value(value, max_size=max_size, key="return_value", task_label=repr(self.task_id))
        except XComSizeError as exc:
            raise XComSizeError(f"{exc}{TRANSFER_HINT}") from None
