"""``SqlToElasticsearchOperator``: stream a SQL query's rows into an index, a bounded batch at a time.

The source is any SQL hook with ``iter_batches(sql, batch_size=...)`` (PostgresHook reads through a
server-side cursor), found from the connection's type, so the operator needs no code per database. Each batch
becomes documents (column name -> value) and goes out in ``_bulk`` requests before the next batch is read:
memory holds one batch whatever the row count. Ids come from a key column, so a re-run replaces documents.

``iter_batches`` yields rows as tuples, without their column names. Those come from ``fields=``, or from the
hook's ``get_column_names(sql, parameters)`` if it has one, or else from running the query wrapped as
``SELECT * FROM (<sql>) AS q WHERE 1 = 0`` on a DB-API connection of the hook (the database plans it and
returns no row).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.transfers.base import BaseTransferOperator
from zonda_elasticsearch.bulk import DEFAULT_MAX_ERRORS, VALID_OP_TYPES, BulkReport

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda_elasticsearch.hooks import ElasticsearchHook

DEFAULT_BATCH_SIZE = 5000


def column_names(hook: Any, sql: str, parameters: Any = None) -> list[str]:
    """The column names of ``sql``'s result, without reading its rows (see the module docstring)."""
    getter = getattr(hook, "get_column_names", None)
    if callable(getter):
        return [str(name) for name in getter(sql, parameters)]
    get_conn = getattr(hook, "get_conn", None)
    if not callable(get_conn):
        raise ZondaException(
            f"cannot tell the column names of the query: {type(hook).__name__} has no get_conn(); pass fields=[...]"
        )
    probe = f"SELECT * FROM ({sql.strip().rstrip(';')}) AS zonda_columns WHERE 1 = 0"
    with closing(get_conn()) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(probe, parameters) if parameters is not None else cursor.execute(probe)
            description = cursor.description or ()
        finally:
            cursor.close()
            rollback = getattr(conn, "rollback", None)
            if callable(rollback):
                rollback()
    return [str(column[0]) for column in description]


class SqlToElasticsearchOperator(BaseTransferOperator):
    """Copy the rows of ``sql`` (on ``sql_conn_id``) into ``index`` (on ``elasticsearch_conn_id``).

    - ``id_field``: the key column whose value becomes each document's ``_id`` (re-runs replace, not duplicate).
    - ``batch_size``: rows read per batch, the memory bound (default 5,000); ``chunk_size``: documents per
      ``_bulk`` request (default: the batch size).
    - ``fields``: the column names, when the source cannot tell them (see the module docstring).
    - ``parameters``: bound to ``sql`` by the source hook.
    - ``transform``: a callable getting each row as a dict; return a dict to index, or None to drop the row.
    - ``refresh``: make the documents searchable before the task ends.
    - ``fail_on_rejected`` (default True): fail the task when Elasticsearch rejects any row, after the whole
      query was streamed, with the report in the message and in the XCom ``transfer_report``; False returns
      the report and lets the task pass.

    The XCom is the report: ``{"rows_read", "rows_indexed", "rows_rejected", "rows_dropped", "errors",
    "errors_truncated", "batches", "seconds", "index"}``, each error with the row's position, id, status and
    reason (the first ``max_errors``). ``Decimal``, ``datetime``, ``UUID`` and ``bytes`` values serialize.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("sql", "index", "id_field", "parameters")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "parameters": "json"}
    ui_color: ClassVar[str] = "#fed766"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        sql: str,
        index: str,
        elasticsearch_conn_id: str = "elasticsearch_default",
        id_field: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int | None = None,
        fields: Sequence[str] | None = None,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        op_type: str = "index",
        refresh: bool = False,
        max_errors: int = DEFAULT_MAX_ERRORS,
        fail_on_rejected: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        if op_type not in VALID_OP_TYPES:
            raise DagDefinitionError(f"task {self.task_id!r}: op_type must be one of {', '.join(VALID_OP_TYPES)}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
            raise DagDefinitionError(f"task {self.task_id!r}: chunk_size must be a positive integer")
        self.sql_conn_id = sql_conn_id
        self.sql = sql
        self.index = index
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.id_field = id_field
        self.chunk_size = chunk_size
        self.fields = list(fields) if fields is not None else None
        self.parameters = parameters
        self.op_type = op_type
        self.refresh = refresh
        self.max_errors = max_errors
        self.fail_on_rejected = fail_on_rejected
        self._report: BulkReport | None = None

    # -- the transfer protocol ------------------------------------------------------------------------------

    def get_source_hook(self) -> Any:
        """The hook of ``sql_conn_id``'s connection type (PostgresHook for ``postgres``...)."""
        from zonda.hooks.base import BaseHook, hook_class_for

        conn = BaseHook.get_connection(self.sql_conn_id)
        hook_class = hook_class_for(conn.conn_type)
        if hook_class is None:
            raise ZondaException(
                f"task {self.task_id!r}: no installed provider has a hook for conn type {conn.conn_type!r} "
                f"(connection {self.sql_conn_id!r}); see `zonda providers connection-types`"
            )
        hook = hook_class(**{hook_class.conn_name_attr: self.sql_conn_id})
        if not callable(getattr(hook, "iter_batches", None)):
            raise ZondaException(
                f"task {self.task_id!r}: {hook_class.__name__} (connection {self.sql_conn_id!r}) cannot stream "
                "rows: it has no iter_batches(sql, batch_size=...)"
            )
        return hook

    def get_destination_hook(self) -> ElasticsearchHook:
        """One hook (and client) for the whole run, closed when it ends."""
        if self.destination_hook is None:
            from zonda_elasticsearch.hooks import ElasticsearchHook

            self.destination_hook = ElasticsearchHook(self.elasticsearch_conn_id)
        return self.destination_hook

    def read_batches(self, source: Any, context: Context) -> Iterator[Sequence[Any]]:
        """Batches of row dicts. The column names are found before the first row is read."""
        names = self.fields
        if names is None:
            names = column_names(source, self.sql, self.parameters)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ZondaException(
                f"task {self.task_id!r}: the query returns the column(s) {', '.join(duplicates)} more than once; "
                "give each column its own name (AS ...), since a document has one value per field"
            )
        if self.id_field is not None and self.id_field not in names:
            raise ZondaException(
                f"task {self.task_id!r}: id_field {self.id_field!r} is not a column of the query (columns: "
                f"{', '.join(names)})"
            )
        kwargs: dict[str, Any] = {"batch_size": self.batch_size}
        if self.parameters is not None:
            kwargs["parameters"] = self.parameters
        return _as_dicts(source.iter_batches(self.sql, **kwargs), names)

    def write_batch(self, destination: Any, batch: Sequence[Any], context: Context) -> int:
        before = self._report.indexed if self._report is not None else 0
        self._report = destination.bulk_index(
            self.index,
            batch,
            id_field=self.id_field,
            chunk_size=self.chunk_size or len(batch),
            op_type=self.op_type,
            report=self._report,
            max_errors=self.max_errors,
        )
        return self._report.indexed - before

    # -- the run --------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        destination = self.get_destination_hook()
        self._report = BulkReport(index=self.index, max_errors=self.max_errors)
        try:
            moved = super().execute(context)
            if self.refresh:
                destination.refresh(self.index)
        finally:
            destination.close()
            self.destination_hook = None
        bulk = self._report
        result = {
            "index": self.index,
            "rows_read": moved["rows_read"],
            "rows_indexed": bulk.indexed,
            "rows_rejected": bulk.rejected,
            "rows_dropped": moved["rows_read"] - bulk.total,
            "errors": [error.to_dict() for error in bulk.errors],
            "errors_truncated": bulk.errors_truncated,
            "batches": moved["batches"],
            "seconds": moved["seconds"],
        }
        self.log.info(
            "Rows read: %s, indexed: %s, rejected: %s, dropped by transform: %s",
            f"{result['rows_read']:,}",
            f"{bulk.indexed:,}",
            f"{bulk.rejected:,}",
            f"{result['rows_dropped']:,}",
        )
        if bulk.rejected:
            self.log.error("Rejected rows: %s", bulk.summary(show=20))
            if self.fail_on_rejected:
                from zonda_elasticsearch.operators import DocumentsRejected

                ti = context.get("ti")
                if ti is not None:
                    ti.xcom_push(key="transfer_report", value=result)
                raise DocumentsRejected(
                    f"task {self.task_id!r}: read {result['rows_read']:,} rows; {bulk.summary()}", bulk
                )
        return result


def _as_dicts(batches: Any, names: list[str]) -> Iterator[list[Any]]:
    """Each batch of tuples as a list of dicts; mappings pass through. Closing this closes the source's stream
    (its server-side cursor), which the transfer does when it ends, also on failure."""
    try:
        for batch in batches:
            if batch and isinstance(batch[0], Mapping):
                yield [dict(row) for row in batch]
            else:
                yield [dict(zip(names, row, strict=True)) for row in batch]
    finally:
        close = getattr(batches, "close", None)
        if callable(close):
            close()
