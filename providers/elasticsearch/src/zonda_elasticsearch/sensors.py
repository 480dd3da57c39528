"""``ElasticsearchQuerySensor``: wait until a query matches at least ``min_count`` documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.sensors.base import BaseSensor, PokeReturnValue
from zonda_elasticsearch.templated import as_int, as_structure

if TYPE_CHECKING:
    from zonda.context import Context


class ElasticsearchQuerySensor(BaseSensor):
    """Done when ``query`` (a DSL dict, a Lucene string, or None for every document) matches at least
    ``min_count`` documents of ``index``. An index that does not exist yet counts 0, since waiting for data to
    arrive often means waiting for its index to be created. The XCom is ``{"count": n}``.

    With ``deferrable=True`` it pokes once, then defers to an :class:`ElasticsearchQueryTrigger`, which counts
    with the asyncio client in the triggerer every ``poke_interval`` seconds: no worker slot is held while it
    waits, and ``timeout`` still bounds the whole wait."""

    template_fields: ClassVar[tuple[str, ...]] = ("index", "query", "min_count")
    template_fields_renderers: ClassVar[dict[str, str]] = {"query": "json"}
    ui_color: ClassVar[str] = "#fed766"

    def __init__(
        self,
        *,
        index: str | list[str],
        query: Any = None,
        min_count: int | str = 1,
        elasticsearch_conn_id: str = "elasticsearch_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.query = query
        self.min_count = min_count
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def _min_count(self) -> int:
        return as_int(self.min_count, "min_count", self.task_id, minimum=0) or 0

    def poke(self, context: Context) -> PokeReturnValue:
        from zonda_elasticsearch.hooks import ElasticsearchHook

        wanted = self._min_count()
        with ElasticsearchHook(self.elasticsearch_conn_id) as hook:
            count = hook.count(self.index, as_structure(self.query, "query", self.task_id), missing_index_ok=True)
        self.log.info("%d document(s) of %s match; waiting for %d", count, self.index, wanted)
        return PokeReturnValue(count >= wanted, {"count": count})

    def execute_deferrable(self, context: Context) -> Any:
        from zonda_elasticsearch.triggers import ElasticsearchQueryTrigger

        first = self.poke(context)
        if first:
            return first.xcom_value
        self.defer(
            trigger=ElasticsearchQueryTrigger(
                index=self.index,
                query=as_structure(self.query, "query", self.task_id),
                min_count=self._min_count(),
                elasticsearch_conn_id=self.elasticsearch_conn_id,
                poke_interval=self.poke_interval or 1.0,
            ),
            method_name="execute_complete",
            timeout=self._remaining_timeout(),
        )

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resumed when the trigger fired."""
        if not isinstance(event, dict) or event.get("status") != "success":
            message = event.get("message") if isinstance(event, dict) else repr(event)
            raise ZondaException(f"sensor {self.task_id!r}: counting matches in the triggerer failed: {message}")
        self.log.info("%d document(s) of %s match", event["count"], self.index)
        return {"count": int(event["count"])}
