"""XCom values: encoding with the size limit, and the storage backend protocol.

A task's XCom is stored as JSON text (see :mod:`zonda.serde`). :func:`encode_value` serializes a value
and checks ``[xcom] max_size`` *before* anything is written, so an oversized value fails the task without
leaving a partial row behind. Storage goes through an :class:`XComBackend`; :class:`InMemoryXComBackend`
serves ``zonda tasks test`` (which records nothing in the metastore) and tests; the metastore backend
lives with the metastore, and a plugin may provide another.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from zonda import serde
from zonda.exceptions import XComSerializationError, XComSizeError

__all__ = [
    "XCOM_RETURN_KEY",
    "InMemoryXComBackend",
    "XComBackend",
    "decode_value",
    "encode_value",
    "human_size",
]

XCOM_RETURN_KEY = "return_value"


def human_size(size: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: binary units, as ``max_size`` defaults to a round 1 MiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def encode_value(value: Any, *, max_size: int, key: str, task_label: str) -> str:
    """Serialize ``value`` for storage and enforce ``max_size`` (bytes of UTF-8 JSON; 0 or less: no limit).

    Raises :class:`XComSerializationError` if the value has no JSON form and :class:`XComSizeError` if it
    is too large; both name the key and the task and say what to do instead.
    """
    try:
        text = serde.dumps(value)
    except XComSerializationError as exc:
        raise XComSerializationError(f"XCom {key!r} of task {task_label}: {exc}") from None
    if max_size > 0:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size > max_size:
            raise XComSizeError(
                f"XCom {key!r} of task {task_label} is {human_size(size)} ({size:,} bytes) as JSON, over the "
                f"limit of {human_size(max_size)} ({max_size:,} bytes) set by [xcom] max_size; nothing was "
                "stored. XCom is meant for small values such as ids, paths and counts: write the data to a "
                "file, a table or an object store and push its path or URI instead, or raise the limit with "
                "[xcom] max_size in zonda.toml or the ZONDA__XCOM__MAX_SIZE environment variable."
            )
    return text


def decode_value(text: str | bytes) -> Any:
    """The Python value of stored XCom text."""
    return serde.loads(text)


@runtime_checkable
class XComBackend(Protocol):
    """Where XCom JSON lives. Values arrive already encoded (and size-checked) by :func:`encode_value`.

    ``map_index`` is ``-1`` for a task that is not mapped, as in Airflow.
    """

    def set(self, *, dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value_json: str) -> None:
        """Store (or replace) one value."""
        ...

    def get(self, *, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> str | None:
        """The stored JSON of one value, or None if there is none."""
        ...

    def get_many(
        self,
        dag_id: str,
        run_id: str,
        task_ids: Sequence[str],
        key: str,
        map_indexes: Sequence[int] | None = None,
    ) -> list[tuple[str, int, str]]:
        """``(task_id, map_index, value_json)`` of every stored value of ``key`` for these tasks.

        Ordered by the order of ``task_ids``, then by map index. ``map_indexes=None`` means every map index.
        """
        ...

    def clear(self, dag_id: str, run_id: str, task_id: str, map_index: int | None) -> None:
        """Delete every key of one task instance (``map_index=None``: of every map index of the task)."""
        ...


class InMemoryXComBackend:
    """A dict-backed :class:`XComBackend`: for ``zonda tasks test`` and tests. Thread-safe."""

    def __init__(self) -> None:
        # (dag_id, run_id, task_id) -> map_index -> key -> value_json
        self._data: dict[tuple[str, str, str], dict[int, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def set(self, *, dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value_json: str) -> None:
        with self._lock:
            self._data.setdefault((dag_id, run_id, task_id), {}).setdefault(map_index, {})[key] = value_json

    def get(self, *, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> str | None:
        by_index = self._data.get((dag_id, run_id, task_id))
        if by_index is None:
            return None
        values = by_index.get(map_index)
        return None if values is None else values.get(key)

    def get_many(
        self,
        dag_id: str,
        run_id: str,
        task_ids: Sequence[str],
        key: str,
        map_indexes: Sequence[int] | None = None,
    ) -> list[tuple[str, int, str]]:
        wanted = None if map_indexes is None else set(map_indexes)
        found: list[tuple[str, int, str]] = []
        with self._lock:
            for task_id in task_ids:
                by_index = self._data.get((dag_id, run_id, task_id))
                if not by_index:
                    continue
                for map_index in sorted(by_index):
                    if wanted is not None and map_index not in wanted:
                        continue
                    value = by_index[map_index].get(key)
                    if value is not None:
                        found.append((task_id, map_index, value))
        return found

    def clear(self, dag_id: str, run_id: str, task_id: str, map_index: int | None) -> None:
        with self._lock:
            if map_index is None:
                self._data.pop((dag_id, run_id, task_id), None)
            else:
                by_index = self._data.get((dag_id, run_id, task_id))
                if by_index is not None:
                    by_index.pop(map_index, None)

    def __len__(self) -> int:
        """How many values are stored (handy in tests)."""
        return sum(len(values) for by_index in self._data.values() for values in by_index.values())
