"""Reading a task log for a viewer: a window of lines, a search, the whole text, and following a live try.

Why windows: a log may have 100,000 lines; the page shows the last screenful at once and fetches other windows
as the reader scrolls or jumps to a search hit, so no answer carries the whole log except the download.

Secrets: the task process masks what it writes; a secret registered later (or a line printed before it was
known) is masked again here, on the lines sent only, which keeps a window cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from zonda.masking import get_masker

#: Lines in one window when the caller does not say.
DEFAULT_WINDOW = 500
MAX_WINDOW = 5000
#: Search hits returned at most (the reader narrows the query past that).
MAX_HITS = 1000
#: Read at most this much of a growing file per poll, so one burst cannot hold a stream's thread for long.
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LogWindow:
    """Lines ``start`` to ``start + len(lines)`` (0-based) of a log of ``total`` lines."""

    total: int
    start: int
    lines: list[str]
    source: str


def masked(lines: Sequence[str]) -> list[str]:
    """``lines`` with every secret this process knows (and URL credentials) replaced by ``***``."""
    redact = get_masker().redact_text
    return [redact(line) for line in lines]


def log_window(
    lines: Sequence[str], source: str, *, start: int | None = None, count: int = DEFAULT_WINDOW
) -> LogWindow:
    """A window of ``count`` lines from ``start`` (None: the last ``count`` lines, where a reader opens)."""
    count = max(1, min(count, MAX_WINDOW))
    total = len(lines)
    first = max(total - count, 0) if start is None else max(0, min(start, total))
    return LogWindow(total, first, masked(lines[first : first + count]), source)


def search_log(lines: Sequence[str], query: str, *, limit: int = MAX_HITS) -> list[int]:
    """The 0-based numbers of the lines containing ``query`` (case-insensitive, as typed: not a pattern), as
    the reader sees them (masked: a search never finds a secret)."""
    needle = query.casefold()
    if not needle:
        return []
    redact = get_masker().redact_text
    hits = []
    for number, line in enumerate(lines):
        if needle in line.casefold() and needle in redact(line).casefold():
            hits.append(number)
            if len(hits) >= limit:
                break
    return hits


def follow_file(
    path: Path,
    from_line: int,
    *,
    is_over: Callable[[], bool],
    max_seconds: float,
    poll_seconds: float = 0.2,
    check_every: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[int, list[str]]]:
    """Follow a growing log file from line ``from_line``: yields ``(lines so far, new masked lines)`` as complete
    lines appear (an empty list now and then, so the caller can send a keep-alive). Ends when ``is_over()``
    says the try ended (checked every ``check_every`` seconds; the lines written until then are sent first),
    or after ``max_seconds``: a reconnect resumes from the count it last saw."""
    deadline = clock() + max_seconds
    offset, seen = _skip_lines(path, from_line)
    pending = b""
    next_check = clock()
    over = False
    while True:
        chunk = _read_from(path, offset)
        offset += len(chunk)
        head, newline, pending = (pending + chunk).rpartition(b"\n")
        if newline:
            new = head.decode("utf-8", errors="replace").split("\n")
            seen += len(new)
            yield seen, masked(new)
        elif over:
            if pending:  # the last line of a finished try has no newline
                seen += 1
                yield seen, masked([pending.decode("utf-8", errors="replace")])
            return
        else:
            yield seen, []
        if clock() >= deadline:
            return
        if not over and clock() >= next_check:
            over = is_over()
            next_check = clock() + check_every
        if not chunk:
            sleep(poll_seconds)


def _skip_lines(path: Path, count: int) -> tuple[int, int]:
    """The byte offset after the first ``count`` complete lines of ``path`` (fewer when it has fewer), and how
    many lines that is."""
    offset = seen = 0
    if count <= 0:
        return 0, 0
    try:
        with path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                offset += len(raw)
                seen += 1
                if seen >= count:
                    break
    except FileNotFoundError:
        pass
    return offset, seen


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(_CHUNK)
    except FileNotFoundError:
        return b""
