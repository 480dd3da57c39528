"""The transfer base class: stream rows from a source hook to a destination hook, one bounded batch at a time.

Memory is bounded by one batch whatever the volume: :meth:`BaseTransferOperator.execute` never holds more than
the batch being written, so a 200-million-row copy needs the same memory as a 200-row one.

The protocol, each step overridable:

- :meth:`~BaseTransferOperator.get_source_hook` / :meth:`~BaseTransferOperator.get_destination_hook`: the
  two hooks (default: the ``source_hook`` / ``destination_hook`` arguments). Providers override them to build
  hooks from connection ids at run time, so DAG parsing opens no connection.
- :meth:`~BaseTransferOperator.read_batches`: yields sequences of rows (default:
  ``source.iter_batches(source_query, batch_size=batch_size)``). Oversized batches are split, so a source that
  ignores ``batch_size`` cannot break the bound.
- :meth:`~BaseTransferOperator.transform`: maps one row (default: unchanged; return None to drop the row).
- :meth:`~BaseTransferOperator.write_batch`: writes one batch and returns how many rows it wrote (default:
  ``destination.write_batch(batch)``, else Airflow's ``destination.insert_rows(table, rows, target_fields)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.operators.base import BaseOperator

if TYPE_CHECKING:
    from zonda.context import Context

DEFAULT_BATCH_SIZE = 1000


def iter_cursor_batches(cursor: Any, batch_size: int) -> Iterator[list[Any]]:
    """Yield a DB-API cursor's rows ``batch_size`` at a time with ``fetchmany``: a ready ``iter_batches``."""
    while True:
        rows = cursor.fetchmany(batch_size)
        if not rows:
            return
        yield list(rows)


class BaseTransferOperator(BaseOperator):
    """Move rows from a source hook to a destination hook in batches of at most ``batch_size`` rows.

    - ``source_hook`` / ``destination_hook``: hook objects, or leave them None and override
      :meth:`get_source_hook` / :meth:`get_destination_hook`.
    - ``source_query``: what the source reads (templated); passed to ``iter_batches``.
    - ``destination_table`` / ``target_fields``: for destinations written with ``insert_rows``.
    - ``batch_size``: rows per batch, a positive int; the memory bound.
    - ``transform``: a callable applied to each row (None drops the row); or override :meth:`transform`.
    - ``log_every_n_batches``: how often progress is logged.

    The return value (the XCom) is a report: ``{"rows_read", "rows_written", "batches", "seconds"}``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("source_query", "destination_table")
    template_fields_renderers: ClassVar[dict[str, str]] = {"source_query": "sql"}
    ui_color: ClassVar[str] = "#e8e6f7"

    def __init__(
        self,
        *,
        source_hook: Any = None,
        destination_hook: Any = None,
        source_query: Any = None,
        destination_table: str | None = None,
        target_fields: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        transform: Callable[[Any], Any] | None = None,
        log_every_n_batches: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise DagDefinitionError(
                f"task {self.task_id!r}: batch_size must be a positive integer (rows per batch), got {batch_size!r}"
            )
        if not isinstance(log_every_n_batches, int) or log_every_n_batches <= 0:
            raise DagDefinitionError(
                f"task {self.task_id!r}: log_every_n_batches must be a positive integer, got {log_every_n_batches!r}"
            )
        if transform is not None and not callable(transform):
            raise DagDefinitionError(f"task {self.task_id!r}: transform must be callable")
        self.source_hook = source_hook
        self.destination_hook = destination_hook
        self.source_query = source_query
        self.destination_table = destination_table
        self.target_fields = list(target_fields) if target_fields is not None else None
        self.batch_size = batch_size
        self.transform_callable = transform
        self.log_every_n_batches = log_every_n_batches

    # --- the protocol -----------------------------------------------------------------------------------

    def get_source_hook(self) -> Any:
        if self.source_hook is None:
            raise ZondaException(
                f"task {self.task_id!r}: no source hook; pass source_hook= or override get_source_hook()"
            )
        return self.source_hook

    def get_destination_hook(self) -> Any:
        if self.destination_hook is None:
            raise ZondaException(
                f"task {self.task_id!r}: no destination hook; pass destination_hook= or override get_destination_hook()"
            )
        return self.destination_hook

    def read_batches(self, source: Any, context: Context) -> Iterator[Sequence[Any]]:
        """Yield batches of rows from ``source``; must stream (never fetch everything first)."""
        iter_batches = getattr(source, "iter_batches", None)
        if iter_batches is None:
            raise ZondaException(
                f"task {self.task_id!r}: source hook {type(source).__name__} has no "
                "iter_batches(query, batch_size=...); override read_batches() to read from it"
            )
        return iter_batches(self.source_query, batch_size=self.batch_size)

    def transform(self, row: Any) -> Any:
        """Map one row before it is written; return None to drop it. Default: the ``transform`` argument."""
        return self.transform_callable(row) if self.transform_callable is not None else row

    def write_batch(self, destination: Any, batch: Sequence[Any], context: Context) -> int:
        """Write one batch; return the number of rows written."""
        write = getattr(destination, "write_batch", None)
        if write is not None:
            written = write(batch)
        elif hasattr(destination, "insert_rows"):
            if not self.destination_table:
                raise ZondaException(
                    f"task {self.task_id!r}: destination hook {type(destination).__name__} writes with "
                    "insert_rows(table, rows), so destination_table= is required"
                )
            written = destination.insert_rows(
                self.destination_table, batch, target_fields=self.target_fields, commit_every=len(batch)
            )
        else:
            raise ZondaException(
                f"task {self.task_id!r}: destination hook {type(destination).__name__} has neither "
                "write_batch(rows) nor insert_rows(table, rows); override write_batch() to write to it"
            )
        return written if isinstance(written, int) and not isinstance(written, bool) else len(batch)

    # --- the loop ---------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        source = self.get_source_hook()
        destination = self.get_destination_hook()
        # Skip the per-row call entirely when nothing transforms: the common copy stays at C speed.
        transforms = self.transform_callable is not None or type(self).transform is not BaseTransferOperator.transform
        started = time.perf_counter()
        rows_read = rows_written = batches = 0
        self.log.info(
            "Transferring from %s to %s in batches of %d rows",
            type(source).__name__,
            type(destination).__name__,
            self.batch_size,
        )
        stream = self.read_batches(source, context)
        try:
            for batch in self._bounded_batches(stream):
                rows_read += len(batch)
                rows = [out for row in batch if (out := self.transform(row)) is not None] if transforms else batch
                if rows:
                    rows_written += self.write_batch(destination, rows, context)
                    batches += 1
                    if batches % self.log_every_n_batches == 0:
                        self._log_progress(batches, rows_read, rows_written, started)
                # Drop the batch before fetching the next one: the bound is one batch, not two.
                del batch, rows
        finally:
            # Release the source's cursor or connection now, also when a write fails or the task times out.
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        report = {
            "rows_read": rows_read,
            "rows_written": rows_written,
            "batches": batches,
            "seconds": round(time.perf_counter() - started, 3),
        }
        self.log.info("Transfer done: %s", report)
        return report

    def _bounded_batches(self, stream: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        """Non-empty batches of at most ``batch_size`` rows: larger ones from the source are sliced."""
        size = self.batch_size
        for raw in stream:
            batch = raw if isinstance(raw, Sequence) else list(raw)
            del raw
            if len(batch) <= size:
                if batch:
                    yield batch
            else:
                for start in range(0, len(batch), size):
                    yield batch[start : start + size]
            del batch

    def _log_progress(self, batches: int, rows_read: int, rows_written: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.log.info(
            "Progress: %d batches, %d rows read, %d rows written (%.0f rows/s)",
            batches,
            rows_read,
            rows_written,
            rows_read / elapsed if elapsed > 0 else 0.0,
        )
