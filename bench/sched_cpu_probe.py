"""Started by ``bench_scheduler_cpu.py`` in place of ``zonda scheduler``: counts SQL statements, then runs it.

Every process of the scheduler's tree (the scheduler, its forked executor workers and their task processes)
inherits the SQLAlchemy listeners installed here, and each adds its counts to its own slot of one shared file
(``ZONDA_BENCH_COUNTS``, a memory map; slot = pid modulo the slot count), so the bench reads the whole tree's
counts without any process having to exit cleanly. Nothing here changes what the scheduler does.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

SLOTS = 4096
#: Per slot: pid, then statements by first keyword, then commits.
FIELDS = ("pid", "select", "insert", "update", "delete", "with", "other", "commit")
SLOT_BYTES = len(FIELDS) * 8
_KIND = {word.upper(): FIELDS.index(word) for word in ("select", "insert", "update", "delete", "with")}


def _bump(counts: mmap.mmap, field: int) -> None:
    pid = os.getpid()
    base = (pid % SLOTS) * SLOT_BYTES
    struct.pack_into("q", counts, base, pid)
    offset = base + field * 8
    struct.pack_into("q", counts, offset, struct.unpack_from("q", counts, offset)[0] + 1)


def install(path: str) -> None:
    """Count every statement and commit of every engine in this process and the processes it forks."""
    with open(path, "r+b") as handle:
        counts = mmap.mmap(handle.fileno(), SLOTS * SLOT_BYTES)

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        word = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        _bump(counts, _KIND.get(word, FIELDS.index("other")))

    def on_commit(conn: Any) -> None:
        _bump(counts, FIELDS.index("commit"))

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Engine, "commit", on_commit)


def main() -> None:
    install(os.environ["ZONDA_BENCH_COUNTS"])
    from zonda.config import load_settings
    from zonda.scheduler.scheduler import Scheduler

    Scheduler(load_settings()).run(install_signals=True)


if __name__ == "__main__":
    main()
