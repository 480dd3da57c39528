"""Is the installation alive? The metastore answers, and the scheduler's and triggerer's heartbeats are fresh.

What ``GET /health`` returns (without login, for load balancers and monitoring): each component's ``status`` is
``healthy`` or ``unhealthy``; a scheduler or triggerer is healthy when a running job of its type heartbeat within
``[scheduler] scheduler_heartbeat_timeout`` seconds. A metastore that does not answer makes everything
unhealthy, with the heartbeats unknown (None); the reason is logged, never returned (it may name a host).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from zonda.metastore import tables as t
from zonda.timezone import utcnow

log = logging.getLogger(__name__)

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ComponentHealth:
    status: str
    latest_heartbeat: datetime | None = None


@dataclass(frozen=True)
class Health:
    metastore: ComponentHealth
    scheduler: ComponentHealth
    triggerer: ComponentHealth

    @property
    def healthy(self) -> bool:
        return all(c.status == HEALTHY for c in (self.metastore, self.scheduler, self.triggerer))

    def as_json(self) -> dict[str, Any]:
        """The JSON body of ``/health`` (keys as Airflow's, ``metastore`` for its ``metadatabase``)."""

        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "metastore": {"status": self.metastore.status},
            "scheduler": {
                "status": self.scheduler.status,
                "latest_scheduler_heartbeat": when(self.scheduler.latest_heartbeat),
            },
            "triggerer": {
                "status": self.triggerer.status,
                "latest_triggerer_heartbeat": when(self.triggerer.latest_heartbeat),
            },
        }


def _latest_heartbeat(conn: Any, job_type: str) -> datetime | None:
    job = t.job
    return conn.execute(
        select(func.max(job.c.latest_heartbeat)).where(job.c.job_type == job_type, job.c.state == "running")
    ).scalar()


def check_health(engine: Any, heartbeat_timeout: float) -> Health:
    """The state of the metastore, the scheduler and the triggerer, now (two small queries)."""
    try:
        with engine.connect() as conn:
            scheduler = _latest_heartbeat(conn, "scheduler")
            triggerer = _latest_heartbeat(conn, "triggerer")
    except Exception as exc:  # any database failure is "unhealthy", which is what this call reports
        log.warning("health check: the metastore did not answer (%s)", type(exc).__name__)
        down = ComponentHealth(UNHEALTHY)
        return Health(down, down, down)
    cutoff = utcnow() - timedelta(seconds=heartbeat_timeout)

    def component(latest: datetime | None) -> ComponentHealth:
        return ComponentHealth(HEALTHY if latest is not None and latest > cutoff else UNHEALTHY, latest)

    return Health(ComponentHealth(HEALTHY), component(scheduler), component(triggerer))


__all__ = ["HEALTHY", "UNHEALTHY", "ComponentHealth", "Health", "check_health"]
