"""The DAGs page: stored DAGs filtered by id, tag, owner and paused state, with the states of their newest runs
and what went wrong loading DAG files.

Three statements however many DAGs there are: every DAG row (a thousand rows are filtered faster in Python than
tags stored as JSON text could be in SQL), the newest runs of the DAGs on the page shown, and the import-error
files. The page is a slice of the filtered DAGs, so the HTML stays small however many DAGs are stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zonda.operations.dags import DagRecord, list_dags, recent_run_states
from zonda.operations.import_errors import ImportErrorFile, import_error_files


@dataclass(frozen=True)
class DagFilter:
    """What the user asked to see; empty fields match every DAG."""

    #: A part of the DAG id, any case.
    search: str = ""
    #: DAGs carrying every one of these tags.
    tags: tuple[str, ...] = ()
    #: DAGs one of whose owners is this one.
    owner: str = ""
    #: Only paused (True) or only active (False) DAGs; None for both.
    paused: bool | None = None

    def matches(self, dag: DagRecord) -> bool:
        if self.search and self.search.casefold() not in dag.dag_id.casefold():
            return False
        if self.tags and not set(self.tags) <= set(dag.tags):
            return False
        if self.owner and self.owner not in owners_of(dag):
            return False
        return self.paused is None or dag.is_paused == self.paused


#: DAGs shown on one page of the DAGs list, unless the caller asks for another size.
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class DagListing:
    #: The DAGs of the requested page that pass the filter, by id, with their newest runs' states.
    dags: list[DagRecord]
    #: How many DAGs there are before filtering.
    total: int
    #: How many DAGs pass the filter, on every page together.
    matched: int
    #: The page shown (1 is the first) and the number of pages; ``page`` is clamped into ``1..pages``.
    page: int
    pages: int
    #: The position of this page's first DAG among those that pass the filter (0 when none do).
    first: int
    #: Every tag and owner of any DAG, sorted, to choose filters from.
    tags: list[str]
    owners: list[str]
    import_errors: list[ImportErrorFile]


def owners_of(dag: DagRecord) -> list[str]:
    """The owners the processor stored as one comma-separated text."""
    return [owner.strip() for owner in (dag.owners or "").split(",") if owner.strip()]


def browse_dags(
    engine: Any,
    wanted: DagFilter,
    *,
    recent: int = 5,
    visible_to: Any = None,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> DagListing:
    """Page ``page`` of the DAGs page's data for ``wanted``, among the DAGs ``visible_to`` (a user) may see.

    A page past the last shows the last one, so a link kept from before DAGs were removed still lands somewhere.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    everything = list_dags(engine, recent=0, visible_to=visible_to)
    chosen = [dag for dag in everything if wanted.matches(dag)]
    pages = max(1, -(-len(chosen) // page_size))
    page = min(max(page, 1), pages)
    start = (page - 1) * page_size
    shown = chosen[start : start + page_size]
    states = recent_run_states(engine, [dag.dag_id for dag in shown], recent=recent)
    return DagListing(
        dags=[dataclasses.replace(dag, recent_run_states=states.get(dag.dag_id, ())) for dag in shown],
        total=len(everything),
        matched=len(chosen),
        page=page,
        pages=pages,
        first=start + 1 if shown else 0,
        tags=sorted({tag for dag in everything for tag in dag.tags}),
        owners=sorted({owner for dag in everything for owner in owners_of(dag)}),
        import_errors=import_error_files(engine, visible_to=visible_to),
    )


__all__ = ["DEFAULT_PAGE_SIZE", "DagFilter", "DagListing", "browse_dags", "owners_of"]
