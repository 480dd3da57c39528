"""LatestOnlyOperator: let only the run of the latest schedule period continue (Airflow's rules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.operators.python import BaseBranchOperator

if TYPE_CHECKING:
    from zonda.context import Context

#: Runs a person asked for: never skipped (``test`` is ``zonda dags test``, a manual run in Airflow).
_MANUAL_RUN_TYPES = ("manual", "test")


class LatestOnlyOperator(BaseBranchOperator):
    """Skip the tasks directly downstream unless this run belongs to the latest schedule period.

    A run is the latest when now lies after its data interval starts and no later than the end of the data
    interval of the next scheduled run: a catch-up or backfill run of an old period skips, the current one
    continues. Manual runs always continue, as do runs of a DAG whose schedule has no next run.
    """

    ui_color: ClassVar[str] = "#e9ffdb"

    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        from zonda.timezone import utcnow

        everything = sorted(self.downstream_task_ids)
        dag_run = context["dag_run"]
        if getattr(dag_run, "run_type", None) in _MANUAL_RUN_TYPES:
            self.log.info("Manually triggered run: allowing execution to proceed")
            return everything
        window = self._window(context)
        if window is None:
            self.log.info("No later scheduled run: allowing execution to proceed")
            return everything
        left, right = window
        now = utcnow()
        self.log.info("Checking latest only: window (%s, %s], now %s", left, right, now)
        if not left < now <= right:
            self.log.info("Not the latest run; skipping the tasks downstream")
            return []
        self.log.info("Latest run: allowing execution to proceed")
        return everything

    def _window(self, context: Context) -> tuple[Any, Any] | None:
        logical = context.get("logical_date")
        start = context.get("data_interval_start") or logical
        end = context.get("data_interval_end") or logical
        timetable = getattr(self.dag, "timetable", None)
        if timetable is None or not timetable.periodic:
            return None
        following = timetable.next_run(end, end)
        if following is None:
            return None
        return start, following.end
