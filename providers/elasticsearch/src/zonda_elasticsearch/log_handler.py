"""Task logs in Elasticsearch: ``[logging] task_log_handler = "elasticsearch"``.

While an attempt runs, every line is written to the attempt's local file first (as the ``file`` handler does)
and also shipped to an index as one structured document per log record::

    {"dag_id", "task_id", "run_id", "map_index", "try_number", "line", "level", "logger", "timestamp",
     "message"}

``line`` counts the attempt's records from 1 (a try resumed after a deferral continues the count), so reading
back sorts on it. Records go through the same secrets filter as the file, so what is shipped is what the file
holds: passwords never leave the worker.

Shipping never slows or fails a task: records wait in a bounded in-memory buffer and a background thread sends
them with the bulk API (every :attr:`~ElasticsearchTaskLogHandler.batch_size` lines or
:attr:`~ElasticsearchTaskLogHandler.flush_interval` seconds); the attempt's end waits for the last batch. If
Elasticsearch is down, a bulk request fails, or the buffer fills, shipping stops for that attempt and a sidecar
marker (``attempt=N.log.unshipped``) says so. The marker is written when the attempt starts and removed only once
every line is in the index, so a worker killed mid-attempt leaves it too. :meth:`ElasticsearchTaskLogHandler.read`
(``zonda tasks logs``, the UI) reads the local file when the marker is there, the index otherwise, and the file
again when the index has nothing for the attempt or cannot be reached.

Settings, read from ``zonda.toml`` or ``ZONDA__LOGGING__...``:

- ``[logging] elasticsearch_conn_id`` (default ``elasticsearch_default``): the connection to ship to;
- ``[logging] elasticsearch_index`` (default ``zonda-task-logs``): the index, created with a mapping on first
  use (keyword ids, integer try and map index, long line, date timestamp, text message).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import TaskLogNotFound, ZondaException
from zonda.runner.log_handlers import TaskLog, TaskLogHandler, TaskLogKey, iter_lines
from zonda.runner.logs import capture_attempt_log, format_line, utc_timestamp

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from zonda.config import Settings
    from zonda_elasticsearch.hooks import ElasticsearchHook

__all__ = ["DEFAULT_CONN_ID", "DEFAULT_INDEX", "MAPPINGS", "ElasticsearchTaskLogHandler", "unshipped_marker"]

log = logging.getLogger("zonda.task_logs.elasticsearch")

DEFAULT_CONN_ID = "elasticsearch_default"
DEFAULT_INDEX = "zonda-task-logs"

#: The index mapping: exact-match ids for the filter, a numeric line for the sort.
MAPPINGS: dict[str, Any] = {
    "properties": {
        "dag_id": {"type": "keyword"},
        "task_id": {"type": "keyword"},
        "run_id": {"type": "keyword"},
        "map_index": {"type": "integer"},
        "try_number": {"type": "integer"},
        "line": {"type": "long"},
        "level": {"type": "keyword"},
        "logger": {"type": "keyword"},
        "timestamp": {"type": "date"},
        "message": {"type": "text"},
    }
}

_MARKER_SUFFIX = ".unshipped"
_SOURCE_FIELDS = ["line", "timestamp", "level", "logger", "message"]
_STOP = object()


def unshipped_marker(path: Path) -> Path:
    """The sidecar of an attempt's log file that says its lines are not (all) in the index."""
    return path.with_name(path.name + _MARKER_SUFFIX)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class _ShipFailed(Exception):
    """A bulk request came back with rejected documents."""


class ElasticsearchTaskLogHandler(TaskLogHandler):
    """Writes each attempt's lines to its local file and to an Elasticsearch index; reads them back in order."""

    name = "elasticsearch"
    #: Lines per bulk request.
    batch_size = 500
    #: Longest a line waits in the buffer before it is sent (seconds).
    flush_interval = 1.0
    #: Lines that may wait to be shipped; past this, shipping stops for the attempt (the file has them all).
    max_buffer = 20_000
    #: Longest the end of an attempt waits for its last lines to be shipped (seconds).
    close_timeout = 30.0
    #: Hits per search page when reading back (search_after paging, so any number of lines).
    page_size = 1_000
    #: Once Elasticsearch could not be reached, later attempts of this run or process ship nothing for this
    #: long (seconds): a run of many tasks then does not wait out the client's retries at every attempt's end.
    unreachable_pause = 30.0

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        log_folder: Path | str | None = None,
        conn_id: str | None = None,
        index: str | None = None,
    ) -> None:
        super().__init__(settings, log_folder=log_folder)
        self.conn_id = conn_id or self._setting("elasticsearch_conn_id", DEFAULT_CONN_ID)
        self.index = index or self._setting("elasticsearch_index", DEFAULT_INDEX)
        self._hook: ElasticsearchHook | None = None
        self._index_ready = False
        self._lock = threading.Lock()
        self._unreachable: tuple[float, str] | None = None  # (until when, why)

    def _setting(self, key: str, default: str) -> str:
        if self.settings is None:
            return default
        return str(self.settings.get("logging", key, default=default) or default)

    def hook(self) -> ElasticsearchHook:
        """The provider's hook for :attr:`conn_id`, kept for the handler's life (one per run or task process):
        hosts, TLS, credentials and the 8/9 compatibility header come from there."""
        with self._lock:
            if self._hook is None:
                from zonda_elasticsearch.hooks import ElasticsearchHook

                self._hook = ElasticsearchHook(elasticsearch_conn_id=self.conn_id)
            return self._hook

    def client(self) -> Elasticsearch:
        """The hook's client (importing the ``elasticsearch`` package the first time)."""
        return self.hook().get_conn()

    def explain(self, exc: BaseException) -> str:
        """A short, secret-free reason for a failure: the hook's words for unreachable clusters, refused
        credentials and bad certificates, else the error itself."""
        from zonda.masking import get_masker

        try:
            described = self.hook().describe_error(exc)
        except Exception:  # the connection itself is what failed: there is nothing better to say
            described = None
        return get_masker().redact_text(described or _describe(exc))

    def _note_unreachable(self, reason: str) -> None:
        self._unreachable = (time.monotonic() + self.unreachable_pause, reason)

    def _still_unreachable(self) -> str | None:
        """Why shipping is paused (Elasticsearch was unreachable moments ago), or None."""
        if self._unreachable is not None and time.monotonic() < self._unreachable[0]:
            return self._unreachable[1]
        return None

    # --- writing ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self, key: TaskLogKey, path: Path, *, echo: bool = False) -> Iterator[Path]:
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = unshipped_marker(path)
        marked_before = marker.exists()  # an earlier part of this try (before a deferral) was not shipped
        resumed = path.exists() and path.stat().st_size > 0
        marker.write_text(f"shipping to Elasticsearch index {self.index!r} did not finish\n", encoding="utf-8")
        shipper = _Shipper(self, key, continue_numbering=resumed)
        shipping = _ShippingHandler(shipper)
        try:
            with capture_attempt_log(path, echo=echo, extra_handlers=[shipping], filters=[shipper.own_records]):
                shipper.start()  # inside, so what the connection lookup logs is part of the attempt's log
                yield path
        finally:
            shipped = shipper.close(self.close_timeout)
            if shipped:
                if not marked_before:
                    marker.unlink(missing_ok=True)
            else:
                reason = f"not shipped to Elasticsearch index {self.index!r}: {shipper.failure}"
                marker.write_text(reason + "\n", encoding="utf-8")
                self._note_in_file(path, f"{reason}; this file has every line")
                log.warning("%s: task log %s; this file has every line: %s", key.label, reason, path)

    @staticmethod
    def _note_in_file(path: Path, note: str) -> None:
        record = logging.LogRecord("zonda.task_logs", logging.WARNING, __file__, 0, note, (), None)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(format_line(utc_timestamp(record), "WARNING", record.name, note) + "\n")

    def _ensure_index(self) -> None:
        """Create the index with :data:`MAPPINGS` if it is missing (once per handler). Without the right to
        create it, shipping goes on: an index template or an existing index may be what the cluster wants."""
        if self._index_ready:
            return
        from elasticsearch import ApiError

        client = self.client()
        try:
            if not client.indices.exists(index=self.index):
                client.indices.create(index=self.index, mappings=MAPPINGS)
        except ApiError as exc:
            if exc.error != "resource_already_exists_exception" and exc.meta.status != 403:
                raise
        self._index_ready = True

    def _last_line(self, key: TaskLogKey) -> int:
        """The highest line number already in the index for this try (a resumed try continues from it)."""
        from elasticsearch import NotFoundError

        try:
            response = self.client().search(
                index=self.index,
                query=_key_query(key),
                sort=[{"line": "desc"}],
                size=1,
                source_includes=["line"],
            )
        except NotFoundError:
            return 0
        hits = response["hits"]["hits"]
        return int(hits[0]["_source"]["line"]) if hits else 0

    def _bulk(self, key: TaskLogKey, batch: list[dict[str, Any]]) -> None:
        operations: list[dict[str, Any]] = []
        for doc in batch:
            operations.append({"index": {"_index": self.index, "_id": _doc_id(key, doc["line"])}})
            operations.append(doc)
        response = self.client().bulk(operations=operations)
        if response.get("errors"):
            rejected = [item for item in response["items"] if next(iter(item.values())).get("error")]
            first = next(iter(rejected[0].values()))["error"] if rejected else "unknown error"
            raise _ShipFailed(f"{len(rejected)} of {len(batch)} lines rejected, e.g. {first}")

    def _refresh(self) -> None:
        """Make the attempt's lines searchable now, so ``tasks logs`` right after the run sees all of them
        (without it they appear within the index's refresh interval, a second by default)."""
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        try:
            self.client().indices.refresh(index=self.index)
        except (ApiError, TransportError) as exc:  # the lines are indexed; they show up within a second anyway
            log.debug("refresh of %s refused: %s", self.index, _describe(exc))

    # --- reading ------------------------------------------------------------------------------------------

    def read(self, key: TaskLogKey) -> TaskLog:
        marker = unshipped_marker(self.local_path(key))
        if marker.exists():
            reason = marker.read_text(encoding="utf-8", errors="replace").strip()
            local = self.read_local(key)
            return TaskLog(local.lines, f"{local.source} ({reason})")
        from elastic_transport import TransportError
        from elasticsearch import ApiError, NotFoundError

        try:
            lines = list(iter_lines(self._search(key)))
            problem = f"Elasticsearch index {self.index!r} has no lines for it"
        except NotFoundError:
            lines, problem = [], f"Elasticsearch index {self.index!r} does not exist"
        except (ApiError, TransportError, ZondaException) as exc:
            lines, problem = [], f"Elasticsearch ({self.conn_id}) could not be read: {self.explain(exc)}"
        if lines:
            return TaskLog(lines, f"Elasticsearch index {self.index!r} (connection {self.conn_id})")
        try:
            local = self.read_local(key)
        except TaskLogNotFound:
            raise TaskLogNotFound(
                f"no log for {key.label}: {problem}, and {self.local_path(key)} does not exist"
            ) from None
        return TaskLog(local.lines, f"{local.source} ({problem})")

    def _search(self, key: TaskLogKey) -> Iterator[str]:
        """The try's records in line order, formatted as the file writes them. ``search_after`` on the line
        number pages through any number of lines; no point-in-time is needed because a finished try's lines
        never change and line numbers are unique (document ids derive from them)."""
        client = self.client()
        after: list[Any] | None = None
        while True:
            extra: dict[str, Any] = {"search_after": after} if after is not None else {}
            response = client.search(
                index=self.index,
                query=_key_query(key),
                sort=[{"line": "asc"}],
                size=self.page_size,
                source_includes=_SOURCE_FIELDS,
                track_total_hits=False,
                **extra,
            )
            hits = response["hits"]["hits"]
            for hit in hits:
                doc = hit["_source"]
                yield format_line(doc["timestamp"], doc["level"], doc["logger"], doc["message"])
            if len(hits) < self.page_size:
                return
            after = hits[-1]["sort"]


def _key_query(key: TaskLogKey) -> dict[str, Any]:
    return {
        "bool": {
            "filter": [
                {"term": {"dag_id": key.dag_id}},
                {"term": {"task_id": key.task_id}},
                {"term": {"run_id": key.run_id}},
                {"term": {"map_index": key.map_index}},
                {"term": {"try_number": key.try_number}},
            ]
        }
    }


def _doc_id(key: TaskLogKey, line: int) -> str:
    """One id per (try, line): a bulk request sent twice overwrites instead of duplicating lines."""
    raw = "\x1f".join((key.dag_id, key.run_id, key.task_id, str(key.map_index), str(key.try_number), str(line)))
    return hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()


class _Shipper:
    """One attempt's buffer and the thread that empties it into the index."""

    def __init__(self, handler: ElasticsearchTaskLogHandler, key: TaskLogKey, *, continue_numbering: bool) -> None:
        self.handler = handler
        self.key = key
        self.continue_numbering = continue_numbering
        self.failure: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=handler.max_buffer)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"zonda-log-shipper-{key.task_id}", daemon=True)
        self.own_records = _NotFromShipper()

    def start(self) -> None:
        """Look the connection up here, in the task's thread (secrets backends and the metastore are used
        as a task would use them; a warning about clear-text credentials lands in the attempt's log), then
        start shipping. The client and the ``elasticsearch`` import happen in the thread, off the task's path."""
        paused = self.handler._still_unreachable()
        if paused is not None:
            self._fail(f"{paused} (an earlier attempt; not retried for {self.handler.unreachable_pause:g} s)")
        else:
            try:
                self.handler.hook().settings  # noqa: B018 - reading it looks the connection up
            except Exception as exc:  # no usable connection: the attempt runs, its lines stay in the file
                self._fail(self.handler.explain(exc))
        self._thread.start()

    def put(self, doc: dict[str, Any]) -> None:
        if self._closed or self.failure is not None:
            return
        try:
            self._queue.put_nowait(doc)
        except queue.Full:
            self._fail(f"more than {self.handler.max_buffer} lines waited to be shipped")

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason

    def _failed(self, exc: BaseException) -> None:
        """A request failed: remember why, and pause shipping for the handler if the cluster is unreachable."""
        from elastic_transport import ConnectionError, ConnectionTimeout

        reason = self.handler.explain(exc)
        if isinstance(exc, ConnectionError | ConnectionTimeout):
            self.handler._note_unreachable(reason)
        self._fail(reason)

    def close(self, timeout: float) -> bool:
        """Ship what is left and stop; True if every line of the attempt is in the index."""
        self._closed = True
        if self._thread.ident is None:  # the attempt's log could not even be opened
            self._fail("shipping never started")
            return False
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            self._fail(f"the last lines could not be shipped within {timeout:g} s")
            return False
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            self._fail(f"the last lines could not be shipped within {timeout:g} s")
        return self.failure is None

    def _run(self) -> None:
        _in_shipper.active = True
        handler = self.handler
        offset = 0
        if self.failure is None:
            try:
                offset = handler._last_line(self.key) if self.continue_numbering else 0
                handler._ensure_index()
            except Exception as exc:  # whatever the client raises, the lines stay in the file
                self._failed(exc)
        batch: list[dict[str, Any]] = []
        due = 0.0
        sent = 0
        while True:
            timeout = max(due - time.monotonic(), 0.0) if batch else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP:
                item["line"] += offset
                if not batch:
                    due = time.monotonic() + handler.flush_interval
                batch.append(item)
            if batch and (item is None or item is _STOP or len(batch) >= handler.batch_size):
                if self.failure is None:
                    try:
                        handler._bulk(self.key, batch)
                        sent += len(batch)
                    except Exception as exc:  # down, refused, rejected: the lines stay in the file
                        self._failed(exc)
                batch = []
            if item is _STOP:
                if sent and self.failure is None:
                    handler._refresh()
                return


#: Set in shipper threads. Filters run in the thread that logs, so this tells a shipper's own records apart
#: exactly (a thread id could be reused by a user's thread once a shipper ends).
_in_shipper = threading.local()


class _NotFromShipper(logging.Filter):
    """Drops records logged by shipper threads (their client's request log), which would otherwise ship
    themselves in an endless loop and clutter the task's file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_in_shipper, "active", False)


class _ShippingHandler(logging.Handler):
    """Turns each record the attempt's file receives into a document for the shipper."""

    def __init__(self, shipper: _Shipper) -> None:
        from zonda.masking import RedactingFilter

        super().__init__()
        self.shipper = shipper
        self.key = shipper.key
        self._line = 0
        self._message = logging.Formatter("%(message)s")  # message, traceback and stack, as the file has them
        self.addFilter(RedactingFilter())
        self.addFilter(shipper.own_records)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self._message.format(record)
        except Exception:
            self.handleError(record)
            return
        self._line += 1
        key = self.key
        self.shipper.put(
            {
                "dag_id": key.dag_id,
                "task_id": key.task_id,
                "run_id": key.run_id,
                "map_index": key.map_index,
                "try_number": key.try_number,
                "line": self._line,
                "level": record.levelname,
                "logger": record.name,
                "timestamp": utc_timestamp(record),
                "message": message,
            }
        )
