"""Where the search operator puts its hits: into the XCom, within its size limit, or into a JSON-lines file.

The XCom is checked while the hits arrive, not after: a search that would overflow ``[xcom] max_size`` stops
at the first page that crosses it (instead of paging through millions of hits held in memory) and says to
write a file. A file is written next to its final name and renamed at the end, so a failed task never leaves
half a file where a downstream task would read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from zonda.exceptions import XComSizeError
from zonda.xcom import human_size
from zonda_elasticsearch.serialization import dumps_line

#: The hit keys kept (``sort`` values are paging internals; ``_ignored`` and friends are noise downstream).
HIT_KEYS = ("_index", "_id", "_score", "_source", "fields", "highlight", "inner_hits")


def slim_hit(hit: Mapping[str, Any]) -> dict[str, Any]:
    return {key: hit[key] for key in HIT_KEYS if key in hit}


class XComHits:
    """Collects hits for the XCom; ``limit`` is ``[xcom] max_size`` in bytes (0 or less: none)."""

    def __init__(self, limit: int, task_label: str) -> None:
        self.limit = limit
        self.task_label = task_label
        self.hits: list[dict[str, Any]] = []
        self.size = 64  # the braces, keys and counts around the hits

    def add(self, hits: Sequence[Mapping[str, Any]], total: int | None) -> None:
        for hit in hits:
            slim = slim_hit(hit)
            self.hits.append(slim)
            if self.limit > 0:
                self.size += len(dumps_line(slim).encode("utf-8")) + 2
        if self.limit > 0 and self.size > self.limit:
            raise self.too_big(total)

    def too_big(self, total: int | None) -> XComSizeError:
        matched = f"{total:,} hits match" if total is not None else "the hits"
        return XComSizeError(
            f"task {self.task_label}: {matched}, and the first {len(self.hits):,} alone are "
            f"{human_size(self.size)} as JSON, over the XCom limit of {human_size(self.limit)} ([xcom] max_size); "
            "nothing was pushed. Write the hits to a file instead, e.g. output='/data/hits-{{ ds }}.jsonl' (the "
            "XCom then holds the path and the counts), or narrow the search: a tighter query, max_hits, or "
            "source=[...] to keep fewer fields."
        )

    def result(self, total: int | None, aggregations: Any) -> dict[str, Any]:
        return {"total": total, "count": len(self.hits), "hits": self.hits, "aggregations": aggregations}


class JsonLinesHits:
    """Writes one hit per line to ``path`` (parent folders created), atomically at :meth:`result`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.expanduser(os.fspath(path)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self.count = 0
        self._file: IO[str] | None = self.partial.open("w", encoding="utf-8")

    def add(self, hits: Sequence[Mapping[str, Any]], total: int | None) -> None:
        assert self._file is not None
        if hits:
            self._file.write("\n".join(dumps_line(slim_hit(hit)) for hit in hits) + "\n")
            self.count += len(hits)

    def result(self, total: int | None, aggregations: Any) -> dict[str, Any]:
        assert self._file is not None
        self._file.close()
        self._file = None
        os.replace(self.partial, self.path)
        return {"total": total, "count": self.count, "output": str(self.path), "aggregations": aggregations}

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.partial.unlink(missing_ok=True)
