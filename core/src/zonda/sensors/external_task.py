"""ExternalTaskSensor: wait for another DAG's run, task or task group at a related logical date (Airflow's
names and rules).

Each poke is one grouped query over the runs (or task instances) at the wanted logical dates. The external
DAG is found at this run's logical date, shifted back by ``execution_delta`` or mapped by
``execution_date_fn``. The verdict is Airflow's: any instance in ``failed_states`` fails the sensor (skips it
with ``soft_fail``), any in ``skipped_states`` skips it, and it succeeds once every one is in ``allowed_states``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError, ZondaException, ZondaSkipException
from zonda.sensors.base import BaseSensor

if TYPE_CHECKING:
    from zonda.context import Context


class ExternalDagFailed(ZondaException):
    """The external DAG, task or task group ended in one of the sensor's ``failed_states``."""


class ExternalDagNotFound(ZondaException):
    """``check_existence=True`` and the external DAG, task or task group is not in the metastore. Fails the
    task even with ``soft_fail``, as in Airflow: a wrong id is a mistake to fix, not an outcome to skip."""


def _states(task_id: str, name: str, given: Sequence[str] | None, default: list[str], valid: set[str]) -> list[str]:
    states = [str(getattr(s, "value", s)) for s in (given if given is not None else default)]
    unknown = sorted(set(states) - valid)
    if unknown:
        raise DagDefinitionError(
            f"sensor {task_id!r}: {name} has {', '.join(map(repr, unknown))}, not a valid state here; "
            f"use some of {', '.join(sorted(valid))}"
        )
    return states


class ExternalTaskSensor(BaseSensor):
    """Wait for ``external_dag_id``'s run (no task given), its ``external_task_id`` / ``external_task_ids``, or
    every task of ``external_task_group_id``, at this run's logical date.

    - ``allowed_states`` (default success), ``skipped_states`` and ``failed_states`` (default none): run states
      when waiting for a whole run, task instance states otherwise.
    - ``execution_delta``: look at ``logical_date - execution_delta``; ``execution_date_fn``: called with the
      logical date first and the context values its parameters name (or all with ``**kwargs``), returns the
      date (or a list of dates) to look at. Give at most one.
    - ``check_existence=True``: fail at once when the external DAG (or task, or group) is not in the metastore.
    - ``deferrable=True``: wait in the triggerer (:class:`~zonda.triggers.cross_dag.WorkflowTrigger`).
    """

    template_fields: ClassVar[Sequence[str]] = (
        "external_dag_id",
        "external_task_id",
        "external_task_ids",
        "external_task_group_id",
    )
    ui_color: ClassVar[str] = "#4db7db"

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        external_task_ids: Sequence[str] | None = None,
        external_task_group_id: str | None = None,
        allowed_states: Sequence[str] | None = None,
        skipped_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        execution_delta: timedelta | None = None,
        execution_date_fn: Callable[..., Any] | None = None,
        check_existence: bool = False,
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:  # Airflow's deprecated name for poke_interval
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        from zonda.state import DagRunState, TaskInstanceState

        if not external_task_ids:
            external_task_ids = None
        if external_task_id is not None and external_task_ids is not None:
            raise DagDefinitionError(f"sensor {self.task_id!r}: give external_task_id or external_task_ids, not both")
        if external_task_group_id is not None and (external_task_id is not None or external_task_ids is not None):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: external_task_group_id cannot be combined with external_task_id(s)"
            )
        if execution_delta is not None and execution_date_fn is not None:
            raise DagDefinitionError(f"sensor {self.task_id!r}: give execution_delta or execution_date_fn, not both")
        if external_task_ids is not None and len(set(external_task_ids)) != len(list(external_task_ids)):
            raise DagDefinitionError(f"sensor {self.task_id!r}: external_task_ids has duplicates")
        on_tasks = external_task_id is not None or external_task_ids is not None or external_task_group_id is not None
        valid = {s.value for s in TaskInstanceState} if on_tasks else {s.value for s in DagRunState}
        what = "task instance" if on_tasks else "DAG run"
        self.allowed_states = _states(
            self.task_id, f"allowed_states ({what} states)", allowed_states, ["success"], valid
        )
        self.skipped_states = _states(self.task_id, f"skipped_states ({what} states)", skipped_states, [], valid)
        self.failed_states = _states(self.task_id, f"failed_states ({what} states)", failed_states, [], valid)
        listed = self.allowed_states + self.skipped_states + self.failed_states
        if len(set(listed)) != len(listed):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: a state is listed twice across allowed_states, skipped_states and "
                "failed_states; give each state one meaning"
            )
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.external_task_ids = list(external_task_ids) if external_task_ids is not None else None
        self.external_task_group_id = external_task_group_id
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn
        self.check_existence = check_existence
        #: The task ids found on the first poke that needed the stored DAG (existence check, group members):
        #: later pokes reuse them, so each poke after the first is one query.
        self._resolved: list[str] | None = None
        self._engine: Any = None

    # --- what to look at ----------------------------------------------------------------------------------

    def _dates(self, context: Context) -> list[datetime]:
        from zonda.timezone import coerce_datetime

        logical = context["logical_date"]
        if self.execution_delta is not None:
            found: Any = logical - self.execution_delta
        elif self.execution_date_fn is not None:
            from zonda.operators.python import call_with_context

            # Airflow's call: the logical date first, then the context values the function names.
            found = call_with_context(self.execution_date_fn, [logical], {}, context)
        else:
            found = logical
        dates = found if isinstance(found, list | tuple) else [found]
        return [coerce_datetime(d) for d in dates]  # type: ignore[misc]

    def _task_ids(self, engine: Any) -> list[str] | None:
        """The external task ids to judge (None: the runs themselves); checks existence when asked."""
        from zonda.operations.cross_dag import dag_shape

        wanted = self.external_task_ids or ([self.external_task_id] if self.external_task_id is not None else None)
        if not self.check_existence and self.external_task_group_id is None:
            return wanted
        if self._resolved is not None:
            return self._resolved or wanted
        shape = dag_shape(engine, self.external_dag_id)
        if shape is None:
            if self.check_existence:
                raise ExternalDagNotFound(f"The external DAG {self.external_dag_id!r} does not exist.")
            return []
        if self.external_task_group_id is not None:
            group = shape.group_task_ids(self.external_task_group_id)
            if self.check_existence and not shape.has_group(self.external_task_group_id):
                raise ExternalDagNotFound(
                    f"The external task group {self.external_task_group_id!r} in DAG {self.external_dag_id!r} "
                    "does not exist."
                )
            if group:
                self._resolved = group
            return group
        missing = sorted(set(wanted or ()) - set(shape.task_groups))
        if missing:
            raise ExternalDagNotFound(
                f"The external task(s) {', '.join(map(repr, missing))} in DAG {self.external_dag_id!r} do not exist."
            )
        self._resolved = list(wanted or [])
        return wanted

    # --- poking -------------------------------------------------------------------------------------------

    @contextmanager
    def _verdicts(self) -> Iterator[None]:
        """A failed verdict fails the task (skips it with ``soft_fail``), a skipped one skips it."""
        with self._soft_fail(ExternalDagFailed):
            yield

    def execute(self, context: Context) -> Any:
        from zonda.operations.cross_dag import task_metastore

        # One engine for every poke of this try, not a new connection a poke.
        with self._verdicts(), task_metastore() as engine:
            self._engine = engine
            try:
                return super().execute(context)
            finally:
                self._engine = None

    def _metastore(self) -> Any:
        """The try's engine while :meth:`execute` runs; a fresh one otherwise (a resumed reschedule)."""
        from contextlib import nullcontext

        from zonda.operations.cross_dag import task_metastore

        return nullcontext(self._engine) if self._engine is not None else task_metastore()

    def poke(self, context: Context) -> bool:
        from zonda.operations.cross_dag import tally

        dates = self._dates(context)
        with self._metastore() as engine:
            task_ids = self._task_ids(engine)
            if task_ids == []:
                self.log.info(
                    "Task group %r of DAG %r has no tasks yet", self.external_task_group_id, self.external_dag_id
                )
                return False
            self.log.info(
                "Poking for DAG %r%s at %s",
                self.external_dag_id,
                f" tasks {task_ids}" if task_ids else "",
                ", ".join(d.isoformat() for d in dates),
            )
            found = tally(engine, self.external_dag_id, dates, task_ids)
        return self._apply(found.verdict(dates, task_ids, self.allowed_states, self.failed_states, self.skipped_states))

    def _apply(self, verdict: str | None) -> bool:
        what = self._what()
        if verdict == "failed":
            raise ExternalDagFailed(f"{what} ended in one of the failed states {self.failed_states}.")
        if verdict == "skipped":
            raise ZondaSkipException(f"{what} ended in one of the skipped states {self.skipped_states}.")
        return verdict == "success"

    def _what(self) -> str:
        if self.external_task_group_id is not None:
            return f"The external task group {self.external_task_group_id!r} in DAG {self.external_dag_id!r}"
        tasks = self.external_task_ids or ([self.external_task_id] if self.external_task_id else None)
        if tasks:
            return f"The external task(s) {', '.join(map(repr, tasks))} in DAG {self.external_dag_id!r}"
        return f"The external DAG {self.external_dag_id!r}"

    # --- deferrable ---------------------------------------------------------------------------------------

    def execute_deferrable(self, context: Context) -> Any:
        from zonda.triggers.cross_dag import WorkflowTrigger

        dates = self._dates(context)
        with self._metastore() as engine:
            task_ids = self._task_ids(engine)
        self.defer(
            trigger=WorkflowTrigger(
                external_dag_id=self.external_dag_id,
                logical_dates=dates,
                external_task_ids=task_ids,
                allowed_states=self.allowed_states,
                failed_states=self.failed_states,
                skipped_states=self.skipped_states,
                poke_interval=self.poke_interval or 0.1,
            ),
            method_name="execute_complete",
            timeout=self._remaining_timeout(),
        )

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Resumed when the trigger decided: the same verdicts as a poke."""
        status = (event or {}).get("status")
        if not self._apply(status):
            raise ExternalDagFailed(f"{self._what()}: the trigger ended with an unexpected event {event!r}.")
        self.log.info("%s is done.", self._what())

    def resume_execution(self, next_method: str, next_kwargs: Any, context: Context) -> Any:
        with self._verdicts():
            return super().resume_execution(next_method, next_kwargs, context)
