"""Triggers that wait for another DAG: :class:`DagStateTrigger` for runs to reach a state (a deferred
``TriggerDagRunOperator``), :class:`WorkflowTrigger` for runs or task instances at logical dates (a deferred
``ExternalTaskSensor``). Both poll the metastore with one grouped query a poll, in a worker thread so the
triggerer's event loop never blocks, on a connection opened for that poll and closed after it: a triggerer
running many of these holds no idle connection per trigger between polls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from zonda.exceptions import TriggerError
from zonda.triggers.base import BaseTrigger, TriggerEvent


def _interval(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TriggerError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


class DagStateTrigger(BaseTrigger):
    """Fires once every run in ``run_ids`` of ``dag_id`` is in one of ``states``; the payload maps each run id to
    its state."""

    def __init__(self, dag_id: str, run_ids: Sequence[str], states: Sequence[str], poll_interval: float = 5.0):
        super().__init__()
        self.dag_id, self.run_ids, self.states = dag_id, list(run_ids), list(states)
        self.poll_interval = _interval(poll_interval, "DagStateTrigger: poll_interval")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "zonda.triggers.cross_dag.DagStateTrigger", {
            "dag_id": self.dag_id,
            "run_ids": self.run_ids,
            "states": self.states,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from zonda.operations.cross_dag import run_state, task_metastore

        def poll() -> dict[str, str | None]:
            with task_metastore() as engine:
                return {run_id: run_state(engine, self.dag_id, run_id) for run_id in self.run_ids}

        while True:
            found = await asyncio.to_thread(poll)
            if all(state in self.states for state in found.values()):
                yield TriggerEvent({"dag_id": self.dag_id, "states": found})
                return
            await asyncio.sleep(self.poll_interval)


class WorkflowTrigger(BaseTrigger):
    """Fires once ``external_dag_id``'s runs at ``logical_dates`` (or their instances of
    ``external_task_ids``) are decided: the payload's ``status`` is ``failed``, ``skipped`` or ``success``,
    judged as :meth:`zonda.operations.cross_dag.Tally.verdict` judges a sensor's poke."""

    def __init__(
        self,
        external_dag_id: str,
        logical_dates: Sequence[datetime | str],
        external_task_ids: Sequence[str] | None = None,
        allowed_states: Sequence[str] = ("success",),
        failed_states: Sequence[str] = (),
        skipped_states: Sequence[str] = (),
        poke_interval: float = 2.0,
    ) -> None:
        from zonda.timezone import coerce_datetime

        super().__init__()
        self.external_dag_id = external_dag_id
        self.logical_dates = [coerce_datetime(d) for d in logical_dates]
        self.external_task_ids = list(external_task_ids) if external_task_ids is not None else None
        self.allowed_states, self.failed_states = list(allowed_states), list(failed_states)
        self.skipped_states = list(skipped_states)
        self.poke_interval = _interval(poke_interval, "WorkflowTrigger: poke_interval")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "zonda.triggers.cross_dag.WorkflowTrigger", {
            "external_dag_id": self.external_dag_id,
            "logical_dates": self.logical_dates,
            "external_task_ids": self.external_task_ids,
            "allowed_states": self.allowed_states,
            "failed_states": self.failed_states,
            "skipped_states": self.skipped_states,
            "poke_interval": self.poke_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from zonda.operations.cross_dag import Tally, tally, task_metastore

        def poll() -> Tally:
            with task_metastore() as engine:
                return tally(engine, self.external_dag_id, self.logical_dates, self.external_task_ids)

        while True:
            found = await asyncio.to_thread(poll)
            status = found.verdict(
                self.logical_dates, self.external_task_ids, self.allowed_states, self.failed_states, self.skipped_states
            )
            if status is not None:
                yield TriggerEvent({"status": status})
                return
            await asyncio.sleep(self.poke_interval)
