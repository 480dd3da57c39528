"""Pages of a long listing: a limit, a keyset position (or an offset), an allow-listed order, and a count that is
exact, estimated or skipped.

Why keyset: with a million task instances, ``OFFSET 500000`` makes the database walk half a million rows; a page
that starts "after the last row of the previous page" (its sort key) reads only the rows it returns, however deep
the reader pages. ``offset`` stays for clients written against Airflow.

Why the count is optional: an exact ``count(*)`` over a million rows costs more than the page itself; a client
polling for new rows rarely needs it. ``estimate`` asks PostgreSQL's planner (other databases count at most
:data:`ESTIMATE_CAP` rows); ``none`` skips it.

Each page costs one statement, plus one for the count when the first page does not already tell it.

Why nullable sort columns are ordered by the bare column, not through ``coalesce``: an expression in ``ORDER BY``
hides the column from its index, so ``order_by=-start_date`` sorted the whole table for each page. NULL then
sorts where the database puts it, as Airflow's API does: below every value on SQLite and MySQL, above every value
on PostgreSQL (first, or last, in ascending order). A keyset position may hold a NULL; :meth:`SortColumn.after`
knows on which side NULLs lie.
"""

from __future__ import annotations

import enum
import functools
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, false, func, literal_column, or_, select

from zonda.exceptions import OperationError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Without a planner to ask, "estimate" counts this many rows at most (and says "more" past it).
ESTIMATE_CAP = 10_000

T = TypeVar("T")


class CountMode(enum.StrEnum):
    EXACT = "exact"
    ESTIMATE = "estimate"
    NONE = "none"


@dataclass(frozen=True)
class SortColumn:
    """One column a listing may be ordered by; a ``nullable`` one sorts NULL where the database does (see the
    module's docstring)."""

    expression: Any
    nullable: bool = False

    def after(self, value: Any, descending: bool, dialect: str) -> Any:
        """Rows whose value comes strictly after ``value`` when ordered by this column (on ``dialect``)."""
        column = self.expression
        nulls_last_here = self.nullable and (dialect == "postgresql") != descending
        if value is None:
            return false() if nulls_last_here else column.is_not(None)
        beyond = column < value if descending else column > value
        return or_(beyond, column.is_(None)) if nulls_last_here else beyond

    def equal(self, value: Any) -> Any:
        return self.expression.is_(None) if value is None else self.expression == value


@dataclass(frozen=True)
class Listing:
    """How one resource is listed: the names clients may order by, the default order, and the unique column that
    breaks ties (so a keyset position names exactly one row)."""

    sortable: Mapping[str, SortColumn]
    default_order: str
    tiebreak: Any

    def parse_order(self, order_by: str | None) -> tuple[str, bool]:
        """``name`` or ``-name`` (descending) -> (name, descending); an unknown name is a one-line error."""
        text = (order_by or self.default_order).strip()
        descending = text.startswith("-")
        name = text.lstrip("-")
        if name not in self.sortable:
            raise OperationError(
                f"order_by {text[:60]!r} is not allowed; use one of {', '.join(sorted(self.sortable))} "
                "(prefix '-' for descending)"
            )
        return name, descending


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    #: The sort key of the last row the client saw (decoded from its cursor): the page starts after it.
    after: tuple[Any, ...] | None = None
    order_by: str | None = None
    count: CountMode = CountMode.EXACT

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise OperationError(f"limit must be 1 to {MAX_LIMIT}, not {self.limit}")
        if self.offset < 0:
            raise OperationError(f"offset must be 0 or more, not {self.offset}")
        if self.after is not None and self.offset:
            raise OperationError("give a cursor or an offset, not both")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    #: None when the count was skipped.
    total_entries: int | None
    #: The order the page is in (``name`` or ``-name``): a cursor is only valid for the same order.
    order: str
    #: The sort key of the last item when more rows may follow (None: this is the last page).
    next_after: tuple[Any, ...] | None


def _after(keys: Sequence[SortColumn], values: Sequence[Any], descending: bool, dialect: str) -> Any:
    """Rows strictly after ``values`` in the order of ``keys`` (all in one direction)."""
    clauses = []
    for i, key in enumerate(keys):
        equal = (k.equal(v) for k, v in zip(keys[:i], values[:i], strict=True))
        clauses.append(and_(*equal, key.after(values[i], descending, dialect)))
    return or_(*clauses)


@functools.lru_cache(maxsize=256)
def _plain_row(fields: tuple[str, ...]) -> Any:
    """A named tuple type for rows with these columns: reading a field of one costs a twentieth of reading it
    from SQLAlchemy's ``Row`` by name, which matters when a page of a thousand rows reads twenty fields each."""
    return namedtuple("PageRow", fields, rename=True)


def fetch_page(
    conn: Any,
    query: Any,
    listing: Listing,
    request: PageRequest,
    convert: Callable[[Any], T],
) -> Page[T]:
    """One page of ``query`` (a select with its filters, not ordered) as ``convert(row)`` each."""
    name, descending = listing.parse_order(request.order_by)
    order = ("-" if descending else "") + name
    keys = [listing.sortable[name], SortColumn(listing.tiebreak)]
    paged = query.add_columns(*(key.expression.label(f"_page_key_{i}") for i, key in enumerate(keys)))
    if request.after is not None:
        if len(request.after) != len(keys):
            raise OperationError("the cursor does not fit this listing; start again without it")
        paged = paged.where(_after(keys, list(request.after), descending, conn.dialect.name))
    paged = paged.order_by(*(key.expression.desc() if descending else key.expression.asc() for key in keys))
    result = conn.execute(paged.offset(request.offset).limit(request.limit + 1))
    columns = len(result.keys()) - len(keys)
    plain = _plain_row(tuple(result.keys())[:columns])
    rows = result.all()
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    next_after = tuple(rows[-1][columns:]) if rows and more else None
    first_page = request.after is None and request.offset == 0
    if first_page and not more:
        total: int | None = len(rows)  # the whole listing is on this page: no count needed
    else:
        total = count_rows(conn, query, request.count)
    return Page([convert(plain._make(row[:columns])) for row in rows], total, order, next_after)


def count_rows(conn: Any, query: Any, mode: CountMode) -> int | None:
    """How many rows ``query`` selects, per ``mode`` (one statement; none for ``none``)."""
    if mode is CountMode.NONE:
        return None
    if mode is CountMode.ESTIMATE and conn.dialect.name == "postgresql":
        return _planner_estimate(conn, query)
    # Counted over a constant, not the listing's columns: a capped count then reads no row's values at all.
    counted = query.order_by(None).with_only_columns(literal_column("1"), maintain_column_froms=True)
    if mode is CountMode.ESTIMATE:
        counted = counted.limit(ESTIMATE_CAP)
    return int(conn.execute(select(func.count()).select_from(counted.subquery())).scalar() or 0)


def _planner_estimate(conn: Any, query: Any) -> int:
    """PostgreSQL's own estimate of the rows ``query`` returns (``EXPLAIN``: nothing is read)."""
    compiled = query.order_by(None).compile(dialect=conn.dialect)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def page_of(items: Sequence[T], request: PageRequest, key: Callable[[T], Any], order: str) -> Page[T]:
    """The same paging over a short list already in memory (pools, connections, users: tens of rows), ``items``
    sorted by ``key`` ascending and unique on it."""
    start = request.offset
    if request.after is not None:
        position = request.after[0]
        start = next((i for i, item in enumerate(items) if key(item) > position), len(items))
    chunk = list(items[start : start + request.limit])
    more = start + request.limit < len(items)
    total = None if request.count is CountMode.NONE else len(items)
    return Page(chunk, total, order, (key(chunk[-1]),) if chunk and more else None)


def pattern_filter(column: Any, pattern: str, name: str) -> Any:
    """Rows whose ``column`` matches ``pattern``, a case-insensitive SQL LIKE expression as Airflow's
    ``*_pattern`` parameters take (``%`` any text, ``_`` one character, ``\\`` makes the next one literal)."""
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    if trailing % 2:
        raise OperationError(f"{name} ends with a lone backslash; write two for a literal one")
    return column.ilike(pattern, escape="\\")


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CountMode",
    "Listing",
    "Page",
    "PageRequest",
    "SortColumn",
    "count_rows",
    "fetch_page",
    "page_of",
    "pattern_filter",
]
