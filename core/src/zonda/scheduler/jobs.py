"""Job rows: who is alive. Schedulers and triggerers register, heartbeat, and end their row."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update

from zonda.metastore import tables as t
from zonda.timezone import utcnow


def start_job(engine: Any, job_type: str, executor_class: str | None = None) -> int:
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            insert(t.job).values(
                job_type=job_type,
                state="running",
                hostname=socket.gethostname(),
                pid=os.getpid(),
                executor_class=executor_class,
                start_date=now,
                latest_heartbeat=now,
            )
        )
        return int(result.inserted_primary_key[0])


def heartbeat(engine: Any, job_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(t.job).where(t.job.c.id == job_id).values(latest_heartbeat=utcnow()))


def end_job(engine: Any, job_id: int, state: str = "success") -> None:
    with engine.begin() as conn:
        conn.execute(update(t.job).where(t.job.c.id == job_id).values(state=state, end_date=utcnow()))


def alive_jobs(engine: Any, job_type: str, timeout: float, exclude: int | None = None) -> list[Any]:
    """Jobs of this type whose heartbeat is fresher than ``timeout`` seconds."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.job).where(
                t.job.c.job_type == job_type, t.job.c.state == "running", t.job.c.latest_heartbeat > cutoff
            )
        ).all()
    return [r for r in rows if r.id != exclude]
