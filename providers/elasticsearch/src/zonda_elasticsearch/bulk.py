"""Bulk indexing with a report: how many documents went in, and which were rejected and why.

Elasticsearch answers a ``_bulk`` request with one result per document; a mapping conflict rejects that one
document and indexes the rest. Losing rows silently is the worst outcome of a load, so every rejection is
counted and the first ``max_errors`` of them are kept with their position in the stream, id, HTTP status,
error type and reason (a bound, so a load where every row fails cannot fill the memory with error texts).

A request that fails as a whole (the cluster is unreachable, the credentials are refused) is not a rejection:
it raises, as any other call does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

DEFAULT_CHUNK_SIZE = 500
#: A ``_bulk`` body stays under this many bytes, whatever the document count. Elasticsearch refuses bodies over
#: ``http.max_content_length`` (100 MB by default) with 413, and bodies of 5-15 MB index best.
DEFAULT_MAX_CHUNK_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_ERRORS = 100
#: Documents answered 429 (the cluster's write queue is full) are sent again this many times, backing off.
BULK_RETRIES_ON_429 = 3
VALID_OP_TYPES = ("index", "create")


@dataclass(frozen=True)
class RejectedDocument:
    """One document Elasticsearch (or the id check before it) did not index."""

    position: int
    id: str | None
    status: int | None
    error_type: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "id": self.id,
            "status": self.status,
            "error_type": self.error_type,
            "reason": self.reason,
        }

    def describe(self) -> str:
        who = f"id {self.id!r}" if self.id is not None else f"document #{self.position}"
        status = f"{self.status} " if self.status is not None else ""
        return f"{who}: {status}{self.error_type}: {self.reason}"


@dataclass
class BulkReport:
    """What one bulk load did. ``errors`` holds at most ``max_errors`` rejections; ``rejected`` counts all."""

    index: str
    indexed: int = 0
    rejected: int = 0
    errors: list[RejectedDocument] = field(default_factory=list)
    max_errors: int = DEFAULT_MAX_ERRORS
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.indexed + self.rejected

    @property
    def errors_truncated(self) -> bool:
        return self.rejected > len(self.errors)

    def reject(self, document: RejectedDocument) -> None:
        self.rejected += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(document)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe report (an operator's XCom)."""
        return {
            "index": self.index,
            "total": self.total,
            "indexed": self.indexed,
            "rejected": self.rejected,
            "errors": [error.to_dict() for error in self.errors],
            "errors_truncated": self.errors_truncated,
            "seconds": round(self.seconds, 3),
        }

    def summary(self, *, show: int = 5) -> str:
        """One paragraph for a log line or an exception."""
        text = f"indexed {self.indexed:,} of {self.total:,} documents into {self.index!r}"
        if not self.rejected:
            return text
        listed = "; ".join(error.describe() for error in self.errors[:show])
        more = self.rejected - min(show, len(self.errors))
        tail = f"; and {more:,} more" if more > 0 else ""
        return f"{text}; {self.rejected:,} rejected: {listed}{tail}"


def _error_parts(item: Mapping[str, Any]) -> tuple[str, str]:
    error = item.get("error")
    if isinstance(error, Mapping):
        reason = str(error.get("reason") or "")
        caused_by = error.get("caused_by")
        if isinstance(caused_by, Mapping) and caused_by.get("reason"):
            reason = f"{reason} (caused by {caused_by.get('type')}: {caused_by.get('reason')})"
        return str(error.get("type") or "error"), reason
    return "error", str(error or "rejected")


def document_id(doc: Mapping[str, Any], id_field: str) -> str | None:
    """The ``_id`` for ``doc``: its ``id_field`` value as text, or None when it has none."""
    value = doc.get(id_field)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def bulk_index(
    client: Elasticsearch,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    *,
    id_field: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    op_type: str = "index",
    report: BulkReport | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    **bulk_kwargs: Any,
) -> BulkReport:
    """Send ``docs`` to ``index`` in ``_bulk`` requests of at most ``chunk_size`` documents and
    ``max_chunk_bytes`` bytes of body; returns the report.

    ``id_field`` names the field whose value becomes each document's ``_id``, so loading the same data again
    replaces documents instead of duplicating them; a document without it is rejected before sending.
    ``op_type="create"`` refuses documents whose id exists already. Pass ``report`` to add to one (a transfer
    keeps one report over many batches; positions continue). ``bulk_kwargs`` go to ``client.bulk``
    (``pipeline``, ``routing``...).

    Each document is serialized once, here, which is how its size is known. Documents answered 429 are sent
    again with backoff. A body the server refuses as too large (413, its ``http.max_content_length`` is lower
    than ``max_chunk_bytes``) is split in halves and sent again; a single document it still refuses is rejected
    with status 413. This loop, rather than ``helpers.streaming_bulk``, because streaming_bulk yields retried
    documents out of order, and the report must name the right one.
    """
    from zonda_elasticsearch.serialization import dumps_line

    if op_type not in VALID_OP_TYPES:
        raise ValueError(f"op_type must be one of {', '.join(VALID_OP_TYPES)}, not {op_type!r}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(max_chunk_bytes, int) or isinstance(max_chunk_bytes, bool) or max_chunk_bytes <= 0:
        raise ValueError(f"max_chunk_bytes must be a positive integer, got {max_chunk_bytes!r}")
    if report is None:
        report = BulkReport(index=index, max_errors=max_errors)
    started = time.perf_counter()
    chunk: list[_Pending] = []
    chunk_bytes = 0
    for position, doc in enumerate(docs, start=report.total):
        header: dict[str, Any] = {"_index": index}
        doc_id = None
        if id_field is not None:
            doc_id = document_id(doc, id_field)
            if doc_id is None:
                report.reject(
                    RejectedDocument(position, None, None, "missing_id", f"the document has no {id_field!r} value")
                )
                continue
            header["_id"] = doc_id
        entry = (position, doc_id, dumps_line({op_type: header}).encode(), dumps_line(doc).encode())
        size = len(entry[2]) + len(entry[3]) + 2  # two newlines
        if chunk and chunk_bytes + size > max_chunk_bytes:
            _send(client, chunk, report, bulk_kwargs)
            chunk, chunk_bytes = [], 0
        chunk.append(entry)
        chunk_bytes += size
        if len(chunk) >= chunk_size:
            _send(client, chunk, report, bulk_kwargs)
            chunk, chunk_bytes = [], 0
    if chunk:
        _send(client, chunk, report, bulk_kwargs)
    report.seconds += time.perf_counter() - started
    return report


#: (position in the stream, id or None, action line, document line), both lines serialized
_Pending = tuple[int, "str | None", bytes, bytes]


def _send(client: Elasticsearch, chunk: list[_Pending], report: BulkReport, bulk_kwargs: Mapping[str, Any]) -> None:
    """One ``_bulk`` request for ``chunk`` (and retries of its 429 answers); results go into ``report``."""
    from elasticsearch import ApiError

    pending = chunk
    for attempt in range(BULK_RETRIES_ON_429 + 1):
        if attempt:
            time.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
        operations: list[bytes] = []
        for _position, _doc_id, action, doc in pending:
            operations.append(action)
            operations.append(doc)
        try:
            response = client.bulk(operations=operations, **bulk_kwargs)
        except ApiError as exc:
            if exc.status_code == 429 and attempt < BULK_RETRIES_ON_429:
                continue
            if exc.status_code == 413:
                _too_large(client, pending, report, bulk_kwargs)
                return
            raise
        if not response.get("errors"):
            report.indexed += len(pending)
            return
        retry: list[_Pending] = []
        for entry, item in zip(pending, response["items"], strict=True):
            result = next(iter(item.values()))
            status = result.get("status", 500)
            if 200 <= status < 300:
                report.indexed += 1
            elif status == 429 and attempt < BULK_RETRIES_ON_429:
                retry.append(entry)
            else:
                error_type, reason = _error_parts(result)
                returned_id = result.get("_id")
                report.reject(
                    RejectedDocument(
                        position=entry[0],
                        id=str(returned_id) if returned_id is not None else entry[1],
                        status=status,
                        error_type=error_type,
                        reason=reason,
                    )
                )
        if not retry:
            return
        pending = retry


def _too_large(client: Elasticsearch, pending: list[_Pending], report: BulkReport, bulk_kwargs: Any) -> None:
    """The server refused the body as too large (413): send each half on its own, down to single documents,
    which are then rejected (one too large for the server can only be split by its author)."""
    if len(pending) > 1:
        middle = len(pending) // 2
        _send(client, pending[:middle], report, bulk_kwargs)
        _send(client, pending[middle:], report, bulk_kwargs)
        return
    position, doc_id, _action, doc = pending[0]
    reason = (
        f"the document is {len(doc):,} bytes as JSON, more than the server accepts in one request "
        "(http.max_content_length); make it smaller or raise that limit"
    )
    report.reject(RejectedDocument(position, doc_id, 413, "request_entity_too_large", reason))
