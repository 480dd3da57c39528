"""The DAGs page: stored DAGs filtered by id, tag, owner and paused state, with the states of their newest runs
and what went wrong loading DAG files.

Three statements however many DAGs there are: every DAG row (a thousand rows are filtered faster in Python than
tags stored as JSON text could be in SQL), the newest runs of the DAGs that pass, and the import-error files.
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


@dataclass(frozen=True)
class DagListing:
    #: The DAGs that pass the filter, by id, with their newest runs' states.
    dags: list[DagRecord]
    #: How many DAGs there are before filtering.
    total: int
    #: Every tag and owner of any DAG, sorted, to choose filters from.
    tags: list[str]
    owners: list[str]
    import_errors: list[ImportErrorFile]


def owners_of(dag: DagRecord) -> list[str]:
    """The owners the processor stored as one comma-separated text."""
    return [owner.strip() for owner in (dag.owners or "").split(",") if owner.strip()]


def browse_dags(engine: Any, wanted: DagFilter, *, recent: int = 5, visible_to: Any = None) -> DagListing:
    """The DAGs page's data for ``wanted``, among the DAGs ``visible_to`` (a user, when given) may see."""
    everything = list_dags(engine, recent=0, visible_to=visible_to)
    chosen = [dag for dag in everything if wanted.matches(dag)]
    states = recent_run_states(engine, [dag.dag_id for dag in chosen], recent=recent)
    return DagListing(
        dags=[dataclasses.replace(dag, recent_run_states=states.get(dag.dag_id, ())) for dag in chosen],
        total=len(everything),
        tags=sorted({tag for dag in everything for tag in dag.tags}),
        owners=sorted({owner for dag in everything for owner in owners_of(dag)}),
        import_errors=import_error_files(engine, visible_to=visible_to),
    )


__all__ = ["DagFilter", "DagListing", "browse_dags", "owners_of"]
