"""TriggerDagRunOperator: start a run of another DAG, optionally wait for it to end (Airflow's names).

The run is created through the operations layer's trigger, so ``conf`` is checked against the target DAG's
params exactly as ``zonda dags trigger`` checks it. ``conf`` is rendered once, as this operator's template
field; what it holds afterwards is data, and the target run never renders it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import Conflict, DagDefinitionError, ZondaException, ZondaFailException, ZondaSkipException
from zonda.operators.base import BaseOperator

if TYPE_CHECKING:
    from zonda.context import Context

#: XCom key of the triggered run's id (Airflow's name), for downstream tasks.
XCOM_RUN_ID = "trigger_run_id"


class TriggeredRunFailed(ZondaException):
    """The triggered run ended in one of ``failed_states``, or in a state neither allowed nor failed."""


class TriggerDagRunOperator(BaseOperator):
    """Trigger a run of ``trigger_dag_id``.

    - ``trigger_run_id``: the new run's id (default ``manual__<logical date>``); ``logical_date``: a datetime
      or ISO 8601 string (default now). Both templated, as is ``conf``.
    - A run with that id already there fails the task without retries (as Airflow 3 does), unless
      ``reset_dag_run=True`` (the run is cleared and runs again; this wins) or ``skip_when_already_exists=True``
      (this task is skipped).
    - ``fail_when_dag_is_paused=True``: fail instead of queueing a run a paused DAG would not start.
    - ``wait_for_completion=True``: poll every ``poke_interval`` seconds until the run's state is in
      ``allowed_states`` (default success: the task succeeds) or ``failed_states`` (default failed: the task
      fails). ``deferrable=True`` waits in the triggerer instead, holding no worker slot.
    """

    template_fields: ClassVar[Sequence[str]] = (
        "trigger_dag_id",
        "trigger_run_id",
        "logical_date",
        "conf",
        "wait_for_completion",
        "skip_when_already_exists",
    )
    ui_color: ClassVar[str] = "#ffefeb"

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str | None = None,
        conf: Mapping[str, Any] | None = None,
        logical_date: str | datetime | None = None,
        reset_dag_run: bool = False,
        wait_for_completion: bool = False,
        poke_interval: float = 60,
        allowed_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        skip_when_already_exists: bool = False,
        fail_when_dag_is_paused: bool = False,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from zonda.state import DagRunState

        if conf is not None and not isinstance(conf, Mapping):
            raise DagDefinitionError(
                f"task {self.task_id!r}: conf must be a dict (JSON object), not {type(conf).__name__}"
            )
        if isinstance(poke_interval, bool) or not isinstance(poke_interval, int | float) or poke_interval <= 0:
            raise DagDefinitionError(f"task {self.task_id!r}: poke_interval must be a positive number of seconds")
        valid = {s.value for s in DagRunState}
        self.allowed_states = [str(s) for s in (allowed_states or [DagRunState.SUCCESS.value])]
        self.failed_states = [str(s) for s in (failed_states or [DagRunState.FAILED.value])]
        unknown = sorted(set(self.allowed_states + self.failed_states) - valid)
        if unknown:
            raise DagDefinitionError(
                f"task {self.task_id!r}: {', '.join(unknown)} not a DAG run state; "
                f"use some of {', '.join(sorted(valid))}"
            )
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = dict(conf) if conf is not None else None
        self.logical_date = logical_date
        self.reset_dag_run = reset_dag_run
        self.wait_for_completion = wait_for_completion
        self.poke_interval = float(poke_interval)
        self.skip_when_already_exists = skip_when_already_exists
        self.fail_when_dag_is_paused = fail_when_dag_is_paused
        self.deferrable = deferrable

    def execute(self, context: Context) -> Any:
        from zonda.operations.cross_dag import task_metastore

        when = self._logical_date()
        run_id = self.trigger_run_id or f"manual__{when.isoformat()}"
        with task_metastore() as engine:
            self._trigger(engine, when, run_id)
            context["ti"].xcom_push(key=XCOM_RUN_ID, value=run_id)
            if not self.wait_for_completion:
                return None
            if not self.deferrable:
                return self._wait(engine, run_id)
        from zonda.triggers.cross_dag import DagStateTrigger

        self.defer(
            trigger=DagStateTrigger(
                dag_id=self.trigger_dag_id,
                run_ids=[run_id],
                states=self.allowed_states + self.failed_states,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            kwargs={"run_id": run_id},
        )

    def _logical_date(self) -> datetime:
        from zonda.timezone import coerce_datetime, utcnow

        if self.logical_date is None or self.logical_date == "":
            return utcnow()
        try:
            return coerce_datetime(self.logical_date)  # type: ignore[return-value]
        except (TypeError, ValueError):
            raise ZondaException(
                f"task {self.task_id!r}: logical_date {self.logical_date!r} is not a datetime or an ISO 8601 "
                "date-time; write it like 2024-01-01T06:00:00+00:00"
            ) from None

    def _trigger(self, engine: Any, when: datetime, run_id: str) -> None:
        from zonda.operations import dag_runs
        from zonda.operations.cross_dag import is_paused

        if self.fail_when_dag_is_paused and is_paused(engine, self.trigger_dag_id):
            raise ZondaException(
                f"DAG {self.trigger_dag_id!r} is paused (fail_when_dag_is_paused=True); unpause it with "
                f"`zonda dags unpause {self.trigger_dag_id}`"
            )
        self.log.info("Triggering DAG %r, run %r", self.trigger_dag_id, run_id)
        try:
            dag_runs.trigger(engine, self.trigger_dag_id, conf=self.conf, logical_date=when, run_id=run_id)
            return
        except Conflict:
            if self.reset_dag_run:
                pass
            elif self.skip_when_already_exists:
                raise ZondaSkipException(
                    f"DAG {self.trigger_dag_id!r} already has a run {run_id!r}; skipping (skip_when_already_exists)"
                ) from None
            else:
                raise ZondaFailException(
                    f"DAG {self.trigger_dag_id!r} already has a run {run_id!r}; set reset_dag_run=True to clear and "
                    "rerun it, or give another trigger_run_id"
                ) from None
        from zonda.operations.task_instances import Selection, clear_task_instances

        self.log.info("Run %r of DAG %r exists: clearing it (reset_dag_run=True)", run_id, self.trigger_dag_id)
        clear_task_instances(engine, Selection(dag_id=self.trigger_dag_id, run_ids=[run_id]))

    def _wait(self, engine: Any, run_id: str) -> None:
        import time

        from zonda.operations.cross_dag import run_state

        while True:  # bounded by the task's execution_timeout, as Airflow's wait is
            time.sleep(self.poke_interval)
            state = run_state(engine, self.trigger_dag_id, run_id)
            self.log.info("Waiting for DAG %r run %r: state %s", self.trigger_dag_id, run_id, state)
            if state in self.failed_states or state in self.allowed_states:
                return self._judge(run_id, state)

    def execute_complete(self, context: Context, event: Any = None, run_id: str = "") -> None:
        """Resumed when the triggered run reached an allowed or failed state."""
        states = (event or {}).get("states") or {}
        return self._judge(run_id, states.get(run_id))

    def _judge(self, run_id: str, state: str | None) -> None:
        if state in self.failed_states:
            raise TriggeredRunFailed(f"DAG {self.trigger_dag_id!r} run {run_id!r} ended {state}, a failed state")
        if state not in self.allowed_states:
            raise TriggeredRunFailed(
                f"DAG {self.trigger_dag_id!r} run {run_id!r} ended {state}, not one of {self.allowed_states}"
            )
        self.log.info("DAG %r run %r ended %s", self.trigger_dag_id, run_id, state)
