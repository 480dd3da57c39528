"""``ElasticsearchQueryTrigger``: count a query's matches in the triggerer until there are enough.

It runs in the triggerer's event loop beside thousands of others, so it uses the asyncio client
(``AsyncElasticsearch`` over aiohttp) and never blocks: the only blocking step, looking the connection up
(which may read the metastore), runs in a worker thread. Its kwargs are plain JSON (the query is stored as a
DSL dict), so any triggerer can rebuild it; the event is JSON too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from zonda.exceptions import TriggerError
from zonda.triggers.base import BaseTrigger, TriggerEvent
from zonda_elasticsearch.query import query_dsl


class ElasticsearchQueryTrigger(BaseTrigger):
    """Fires ``{"status": "success", "count": n}`` once ``query`` matches at least ``min_count`` documents of
    ``index`` (a missing index counts 0), polling every ``poke_interval`` seconds; ``{"status": "error",
    "message": ...}`` when a count fails (bad query, refused credentials, unreachable cluster)."""

    def __init__(
        self,
        index: str | list[str],
        query: Any = None,
        min_count: int = 1,
        elasticsearch_conn_id: str = "elasticsearch_default",
        poke_interval: float = 5.0,
    ) -> None:
        super().__init__()
        if isinstance(poke_interval, bool) or not isinstance(poke_interval, int | float) or poke_interval <= 0:
            raise TriggerError(
                f"ElasticsearchQueryTrigger: poke_interval must be a positive number of seconds, not {poke_interval!r}"
            )
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 0:
            raise TriggerError(f"ElasticsearchQueryTrigger: min_count must be an integer >= 0, not {min_count!r}")
        self.index = index
        self.query = query_dsl(query)
        self.min_count = min_count
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "zonda_elasticsearch.triggers.ElasticsearchQueryTrigger",
            {
                "index": self.index,
                "query": self.query,
                "min_count": self.min_count,
                "elasticsearch_conn_id": self.elasticsearch_conn_id,
                "poke_interval": self.poke_interval,
            },
        )

    async def _count(self, client: Any) -> int:
        from elasticsearch import NotFoundError

        try:
            if self.query is None:
                response = await client.count(index=self.index)
            else:
                response = await client.count(index=self.index, query=self.query)
        except NotFoundError:
            return 0  # the index does not exist yet: nothing matches so far
        return int(response["count"])

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from zonda.masking import get_masker
        from zonda_elasticsearch.hooks import ElasticsearchHook

        hook = ElasticsearchHook(self.elasticsearch_conn_id)
        try:
            await asyncio.to_thread(lambda: hook.settings)
            client = hook.get_async_conn()
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": get_masker().redact_text(f"{type(exc).__name__}: {exc}")})
            return
        try:
            while True:
                try:
                    count = await self._count(client)
                except Exception as exc:
                    message = hook.describe_error(exc) or f"{type(exc).__name__}: {exc}"
                    yield TriggerEvent({"status": "error", "message": get_masker().redact_text(message)})
                    return
                if count >= self.min_count:
                    yield TriggerEvent({"status": "success", "count": count})
                    return
                await asyncio.sleep(self.poke_interval)
        finally:
            await client.close()
