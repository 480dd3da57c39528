"""BaseTransferOperator: streaming copies between two real SQLite files, with bounded batches and memory."""

from __future__ import annotations

import gc
import logging
import sqlite3
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.transfers import BaseTransferOperator, iter_cursor_batches


class SqliteSourceHook:
    """A minimal source hook: streams a query's rows with ``fetchmany``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed_cursors = 0

    def iter_batches(self, query: str, batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
        conn = sqlite3.connect(self.path)
        try:
            cursor = conn.execute(query)
            yield from iter_cursor_batches(cursor, batch_size)
        finally:
            self.closed_cursors += 1
            conn.close()


class SqliteDestinationHook:
    """A minimal destination hook: one ``executemany`` and commit per batch; records batch sizes."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS dst (id INTEGER PRIMARY KEY, name TEXT, value REAL)")
        self.max_batch = 0
        self.batches = 0

    def write_batch(self, rows: Sequence[tuple[Any, ...]]) -> int:
        self.max_batch = max(self.max_batch, len(rows))
        self.batches += 1
        self.conn.executemany("INSERT INTO dst VALUES (?, ?, ?)", rows)
        self.conn.commit()
        return len(rows)

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM dst").fetchone()[0]


def make_source(path: Path, rows: int) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE src (id INTEGER PRIMARY KEY, name TEXT, value REAL)")
    conn.executemany(
        "INSERT INTO src VALUES (?, ?, ?)",
        ((i, f"name-{i:08d}-padding-padding", i * 0.5) for i in range(rows)),
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "big.db", 200_000)


@pytest.fixture(scope="module")
def small_source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "small.db", 20_000)


def transfer(source: Path, dest: Path, **kwargs: Any) -> tuple[dict[str, Any], SqliteDestinationHook]:
    destination = SqliteDestinationHook(dest)
    op = BaseTransferOperator(
        task_id="copy",
        source_hook=SqliteSourceHook(source),
        destination_hook=destination,
        source_query="SELECT id, name, value FROM src ORDER BY id",
        **kwargs,
    )
    return op.execute({}), destination


def test_copies_200k_rows_in_bounded_batches(big_source, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="zonda.task")
    report, destination = transfer(big_source, tmp_path / "dst.db", batch_size=1000, log_every_n_batches=50)
    assert report["rows_read"] == 200_000
    assert report["rows_written"] == 200_000
    assert report["batches"] == 200
    assert isinstance(report["seconds"], float)
    assert destination.count() == 200_000
    assert destination.max_batch <= 1000
    assert destination.batches == 200
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Progress:" in m for m in messages) == 4
    assert any(m.startswith("Transfer done:") and "'rows_written': 200000" in m for m in messages)


def _peak_of_transfer(source: Path, dest: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        transfer(source, dest, batch_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_memory_is_bounded_by_one_batch(big_source, small_source, tmp_path):
    small_peak = _peak_of_transfer(small_source, tmp_path / "a.db")
    big_peak = _peak_of_transfer(big_source, tmp_path / "b.db")
    # Materializing 200k rows of (int, str, float) tuples would take tens of MB.
    tracemalloc.start()
    conn = sqlite3.connect(big_source)
    everything = conn.execute("SELECT id, name, value FROM src").fetchall()
    _, materialized = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del everything
    conn.close()
    assert big_peak < materialized / 10, (big_peak, materialized)
    assert big_peak < 2 * small_peak + 256 * 1024, (small_peak, big_peak)


def test_oversized_source_batches_are_split(tmp_path):
    class Source:
        def iter_batches(self, query, batch_size):
            yield list(range(2500))  # ignores batch_size
            yield (i for i in range(10))  # not a sequence
            yield []

    seen: list[int] = []

    class Dest:
        def write_batch(self, rows):
            seen.append(len(rows))

    op = BaseTransferOperator(task_id="t", source_hook=Source(), destination_hook=Dest(), batch_size=1000)
    report = op.execute({})
    assert seen == [1000, 1000, 500, 10]
    assert report["rows_read"] == report["rows_written"] == 2510
    assert report["batches"] == 4


def test_transform_argument_and_dropping_rows(big_source, tmp_path):
    class Dest:
        rows: list[Any] = []

        def write_batch(self, rows):
            self.rows.extend(rows)
            return len(rows)

    class Source:
        def iter_batches(self, query, batch_size):
            yield [1, 2, 3, 4]
            yield [5, 7]

    dest = Dest()
    op = BaseTransferOperator(
        task_id="t",
        source_hook=Source(),
        destination_hook=dest,
        transform=lambda r: r * 10 if r % 2 == 0 else None,
    )
    report = op.execute({})
    assert dest.rows == [20, 40]
    assert report == {**report, "rows_read": 6, "rows_written": 2, "batches": 1}


def test_subclass_protocol_with_insert_rows(tmp_path):
    """A subclass builds its hooks and reads its own way; the destination has Airflow's insert_rows."""

    class InsertRowsHook:
        def __init__(self) -> None:
            self.calls: list[tuple[str, list[Any], Any]] = []

        def insert_rows(self, table, rows, target_fields=None, commit_every=1000):
            self.calls.append((table, list(rows), target_fields))

    destination = InsertRowsHook()

    class MyTransfer(BaseTransferOperator):
        def get_source_hook(self):
            return "numbers"

        def get_destination_hook(self):
            return destination

        def read_batches(self, source, context):
            for start in range(0, 7, self.batch_size):
                yield list(range(start, min(start + self.batch_size, 7)))

        def transform(self, row):
            return (row, str(row))

    op = MyTransfer(task_id="t", batch_size=3, destination_table="nums", target_fields=["n", "s"])
    report = op.execute({})
    assert [len(c[1]) for c in destination.calls] == [3, 3, 1]
    assert destination.calls[0] == ("nums", [(0, "0"), (1, "1"), (2, "2")], ["n", "s"])
    assert report["rows_written"] == 7


def test_insert_rows_needs_destination_table():
    class Source:
        def iter_batches(self, query, batch_size):
            yield [1]

    class Dest:
        def insert_rows(self, table, rows, target_fields=None, commit_every=1000):
            pass

    op = BaseTransferOperator(task_id="t", source_hook=Source(), destination_hook=Dest())
    with pytest.raises(ZondaException, match="destination_table"):
        op.execute({})


def test_source_is_closed_when_a_write_fails(big_source):
    source = SqliteSourceHook(big_source)

    class FailingDest:
        def write_batch(self, rows):
            raise RuntimeError("disk full")

    op = BaseTransferOperator(
        task_id="t", source_hook=source, destination_hook=FailingDest(), source_query="SELECT * FROM src"
    )
    with pytest.raises(RuntimeError, match="disk full"):
        op.execute({})
    assert source.closed_cursors == 1


def test_missing_hooks_and_methods_are_clear_errors():
    with pytest.raises(ZondaException, match="no source hook"):
        BaseTransferOperator(task_id="t").execute({})
    with pytest.raises(ZondaException, match="no destination hook"):
        BaseTransferOperator(task_id="t", source_hook=object()).execute({})
    with pytest.raises(ZondaException, match="iter_batches"):
        BaseTransferOperator(task_id="t", source_hook=object(), destination_hook=object()).execute({})

    class Source:
        def iter_batches(self, query, batch_size):
            yield [1]

    with pytest.raises(ZondaException, match="write_batch"):
        BaseTransferOperator(task_id="t", source_hook=Source(), destination_hook=object()).execute({})


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True, None])
def test_batch_size_must_be_a_positive_int(bad):
    with pytest.raises(DagDefinitionError, match="batch_size must be a positive integer"):
        BaseTransferOperator(task_id="t", batch_size=bad)


def test_template_fields_and_public_names():
    import zonda.transfers

    assert "source_query" in BaseTransferOperator.template_fields
    assert sorted(zonda.transfers.__all__) == ["BaseTransferOperator", "iter_cursor_batches"]
