"""``ElasticsearchSearchOperator`` and ``ElasticsearchIndexOperator``: a pipeline's reads from and writes to an
index, with the paging, size limits and rejection reports a one-off script would skip."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError, ZondaException
from zonda.operators.base import BaseOperator
from zonda_elasticsearch.bulk import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_ERRORS, VALID_OP_TYPES, BulkReport
from zonda_elasticsearch.templated import as_int, as_structure

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda_elasticsearch.hooks import ElasticsearchHook

#: Hits per request by default; one request may ask for at most 10,000 (``index.max_result_window``).
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


def xcom_limit(context: Context | Mapping[str, Any]) -> int:
    """``[xcom] max_size`` for this run: the running task instance's, else the configuration's."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    limit = getattr(ti, "xcom_max_size", None)
    if isinstance(limit, int):
        return limit
    from zonda.config import load_settings

    return int(load_settings().get("xcom", "max_size"))


def _total(response: Mapping[str, Any]) -> int | None:
    total = response.get("hits", {}).get("total")
    if isinstance(total, Mapping):
        return int(total.get("value", 0))
    return int(total) if total is not None else None


class ElasticsearchSearchOperator(BaseOperator):
    """Search ``index`` and hand the hits on, to the XCom or to a JSON-lines file.

    - ``query``: a query DSL dict (``{"match": {"title": "zonda"}}``), a Lucene query string
      (``"status:active AND age:>30"``), or None for every document.
    - ``size``: hits per request (default 1,000, at most 10,000); ``0`` fetches no hits, only ``total`` and
      ``aggregations``.
    - ``max_hits``: how many hits to collect in all; None (default) means every match. Past one request the
      operator pages with a point in time and ``search_after``, so there is no 10,000-hit ceiling.
    - ``sort``, ``source`` (``_source`` filtering: a field list, ``False``, or includes/excludes), ``aggs``.
    - ``output``: ``"xcom"`` (default) returns ``{"total", "count", "hits", "aggregations"}``, each hit with
      ``_index``, ``_id``, ``_score`` and ``_source``; it must fit ``[xcom] max_size``, and a search that does
      not fails early with an error saying to write a file. Any other value is a file path: one hit per line is
      written there (atomically) and the XCom is ``{"total", "count", "output", "aggregations"}``.

    Every argument is templated (``output`` is kept in the attribute ``output_target``, since
    ``operator.output`` is the operator's XComArg).
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "index",
        "query",
        "size",
        "sort",
        "source",
        "aggs",
        "max_hits",
        "output_target",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"query": "json", "aggs": "json", "sort": "json"}
    ui_color: ClassVar[str] = "#fed766"

    def __init__(
        self,
        *,
        index: str | list[str],
        query: Any = None,
        size: int | str = DEFAULT_PAGE_SIZE,
        sort: Any = None,
        source: Any = None,
        aggs: Mapping[str, Any] | str | None = None,
        max_hits: int | str | None = None,
        output: str | os.PathLike[str] = "xcom",
        elasticsearch_conn_id: str = "elasticsearch_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.query = query
        self.size = size
        self.sort = sort
        self.source = source
        self.aggs = aggs
        self.max_hits = max_hits
        # Kept as output_target: ``operator.output`` is the operator's XComArg, as on every operator.
        self.output_target = os.fspath(output) if isinstance(output, os.PathLike) else output
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def get_hook(self) -> ElasticsearchHook:
        from zonda_elasticsearch.hooks import ElasticsearchHook

        return ElasticsearchHook(self.elasticsearch_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from zonda_elasticsearch.output import JsonLinesHits, XComHits
        from zonda_elasticsearch.query import describe

        task = self.task_id
        size = as_int(self.size, "size", task, minimum=0) or 0
        if size > MAX_PAGE_SIZE:
            raise ZondaException(
                f"task {task!r}: size is hits per request, at most {MAX_PAGE_SIZE:,}; use max_hits for how many "
                "hits to collect in all"
            )
        max_hits = as_int(self.max_hits, "max_hits", task, minimum=0, allow_none=True)
        query = as_structure(self.query, "query", task)
        sort = as_structure(self.sort, "sort", task)
        source = as_structure(self.source, "source", task)
        aggs = as_structure(self.aggs, "aggs", task) or None
        if aggs is not None and not isinstance(aggs, Mapping):
            raise ZondaException(f"task {task!r}: aggs must be a dict of aggregations, not {type(aggs).__name__}")
        target = self.output_target
        to_xcom = not target or str(target).strip().lower() == "xcom"
        label = repr(task)
        sink: XComHits | JsonLinesHits
        if to_xcom:
            sink = XComHits(xcom_limit(context) if self.do_xcom_push else 0, label)
        else:
            sink = JsonLinesHits(str(target))
        self.log.info("Searching %s for %s (%s hits per request)", self.index, describe(query), size)
        hook = self.get_hook()
        try:
            total, aggregations = self._search(hook, sink, query, size, max_hits, sort, source, aggs)
            result = sink.result(total, aggregations)
        except BaseException:
            if isinstance(sink, JsonLinesHits):
                sink.abort()
            raise
        finally:
            hook.close()
        if to_xcom and self.do_xcom_push and isinstance(sink, XComHits):
            self._check_xcom(sink, result, total)
        where = "the XCom" if to_xcom else result.get("output")
        self.log.info("%s of %s matching hits went to %s", f"{result['count']:,}", f"{total:,}", where)
        return result

    def _search(
        self,
        hook: ElasticsearchHook,
        sink: Any,
        query: Any,
        size: int,
        max_hits: int | None,
        sort: Any,
        source: Any,
        aggs: Mapping[str, Any] | None,
    ) -> tuple[int, Any]:
        if size == 0 or max_hits == 0:
            response = hook.search(self.index, query, size=0, aggs=aggs)
            return _total(response) or 0, response.get("aggregations")
        if max_hits is not None and max_hits <= size:
            # One request is enough: no point in time needed.
            response = hook.search(self.index, query, size=max_hits, sort=sort, source=source, aggs=aggs)
            total = _total(response) or 0
            sink.add(response["hits"]["hits"], total)
            return total, response.get("aggregations")
        total, aggregations = 0, None
        pages = hook.iter_pages(
            self.index,
            query,
            sort=sort,
            batch_size=size,
            source=source,
            max_hits=max_hits,
            aggs=aggs,
            track_total_hits=True,
        )
        for number, page in enumerate(pages):
            if number == 0:
                total = _total(page) or 0
                aggregations = page.get("aggregations")
            sink.add(page["hits"]["hits"], total)
        return total, aggregations

    def _check_xcom(self, sink: Any, result: Mapping[str, Any], total: int) -> None:
        """The exact check, before the runner pushes: the running estimate leaves out the aggregations."""
        from zonda.exceptions import XComSizeError
        from zonda.xcom import encode_value

        if sink.limit <= 0:
            return
        try:
            encode_value(result, max_size=sink.limit, key="return_value", task_label=repr(self.task_id))
        except XComSizeError:
            sink.size = len(json.dumps(result, default=str).encode("utf-8"))
            raise sink.too_big(total) from None


class DocumentsRejected(ZondaException):
    """Elasticsearch rejected some documents; ``report`` says which and why."""

    def __init__(self, message: str, report: BulkReport) -> None:
        super().__init__(message)
        self.report = report


def as_document(item: Any) -> Any:
    """A hit (``{"_index", "_id", "_source"}``, e.g. from the search operator) stands for its ``_source``."""
    if isinstance(item, Mapping) and isinstance(item.get("_source"), Mapping) and "_id" in item:
        return item["_source"]
    return item


class ElasticsearchIndexOperator(BaseOperator):
    """Bulk-index documents into ``index``: from ``documents`` or from the JSON-lines file ``input_path``.

    - ``documents``: a list of dicts, usually another task's XCom (``other.output``, or a template); the XCom of
      an :class:`ElasticsearchSearchOperator` works too (its hits' ``_source`` are indexed).
    - ``input_path``: a JSON-lines file, one document per line, read as a stream (any size).
    - ``id_field``: the field whose value is each document's ``_id``. Set it so that a re-run (a retry, a
      backfill) replaces the documents instead of adding them again.
    - ``op_type``: ``"index"`` (default, replace) or ``"create"`` (refuse ids that exist).
    - ``refresh``: make the documents searchable before the task ends.

    The XCom is the report: ``{"index", "total", "indexed", "rejected", "errors", ...}``, each error with the
    document's position, id, status and reason. When any document is rejected the task fails with that report
    in its message (and in the XCom ``bulk_report``), since a load that drops rows must not pass silently.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("index", "documents", "input_path", "id_field")
    template_fields_renderers: ClassVar[dict[str, str]] = {"documents": "json"}
    ui_color: ClassVar[str] = "#fed766"

    def __init__(
        self,
        *,
        index: str,
        documents: Any = None,
        input_path: str | os.PathLike[str] | None = None,
        id_field: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        op_type: str = "index",
        refresh: bool = False,
        max_errors: int = DEFAULT_MAX_ERRORS,
        elasticsearch_conn_id: str = "elasticsearch_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (documents is None) == (input_path is None):
            raise DagDefinitionError(f"task {self.task_id!r}: give either documents= or input_path= (not both)")
        if op_type not in VALID_OP_TYPES:
            raise DagDefinitionError(f"task {self.task_id!r}: op_type must be one of {', '.join(VALID_OP_TYPES)}")
        self.index = index
        self.documents = documents
        self.input_path = os.fspath(input_path) if isinstance(input_path, os.PathLike) else input_path
        self.id_field = id_field
        self.chunk_size = chunk_size
        self.op_type = op_type
        self.refresh = refresh
        self.max_errors = max_errors
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def get_hook(self) -> ElasticsearchHook:
        from zonda_elasticsearch.hooks import ElasticsearchHook

        return ElasticsearchHook(self.elasticsearch_conn_id)

    def _documents(self) -> Iterator[Any]:
        if self.input_path is not None:
            return self._read_lines(str(self.input_path))
        documents = as_structure(self.documents, "documents", self.task_id)
        if isinstance(documents, Mapping):
            hits = documents.get("hits")
            documents = hits if isinstance(hits, list) else [documents]
        if not isinstance(documents, list | tuple):
            raise ZondaException(
                f"task {self.task_id!r}: documents must be a list of dicts (or one dict), not "
                f"{type(documents).__name__}"
            )
        return (as_document(item) for item in documents)

    def _read_lines(self, path: str) -> Iterator[Any]:
        with open(os.path.expanduser(path), encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    document = json.loads(line)
                except ValueError as exc:
                    raise ZondaException(
                        f"task {self.task_id!r}: {path}, line {number}, is not JSON ({exc}); documents before it "
                        "were indexed"
                    ) from None
                yield as_document(document)

    def execute(self, context: Context) -> dict[str, Any]:
        source = self.input_path or "documents"
        self.log.info("Indexing %s into %s (ids from %s)", source, self.index, self.id_field or "Elasticsearch")
        hook = self.get_hook()
        try:
            report = hook.bulk_index(
                self.index,
                self._checked(self._documents()),
                id_field=self.id_field,
                chunk_size=self.chunk_size,
                op_type=self.op_type,
                refresh=self.refresh,
                max_errors=self.max_errors,
            )
        finally:
            hook.close()
        result = report.to_dict()
        if report.rejected:
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key="bulk_report", value=result)
            self.log.error("Bulk load incomplete: %s", report.summary(show=20))
            raise DocumentsRejected(f"task {self.task_id!r}: {report.summary()}", report)
        self.log.info("Bulk load done: %s in %.2fs", report.summary(), report.seconds)
        return result

    def _checked(self, documents: Iterator[Any]) -> Iterator[Mapping[str, Any]]:
        for position, document in enumerate(documents):
            if not isinstance(document, Mapping):
                raise ZondaException(
                    f"task {self.task_id!r}: document #{position} is a {type(document).__name__}, not a JSON object"
                )
            yield document
