"""The task instance a running task sees as ``ti``: identity, try number, XCom access, skipping others."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zonda.state import TaskInstanceState
from zonda.xcom import XCOM_RETURN_KEY, decode_value, encode_value

if TYPE_CHECKING:
    from pathlib import Path

    from zonda.operators.base import Node
    from zonda.runner.store import DagRunInfo, RunStore


class TaskInstance:
    """One task in one DAG run (one map index of a mapped task), across its tries."""

    def __init__(
        self,
        task: Node,
        run: DagRunInfo,
        store: RunStore,
        *,
        map_index: int = -1,
        xcom_max_size: int = 1024 * 1024,
    ) -> None:
        self.task = task
        self.dag_id = run.dag_id
        self.task_id = task.task_id
        self.run_id = run.run_id
        self.map_index = map_index
        self.dag_run = run
        self.store = store
        self.xcom_max_size = xcom_max_size
        self.state: TaskInstanceState = TaskInstanceState.NONE
        self.try_number = 0
        self.max_tries = int(getattr(task, "retries", 0) or 0)
        self.start_date: datetime | None = None
        self.end_date: datetime | None = None
        self.duration: float | None = None
        self.queued_dttm: datetime | None = None
        self.hostname: str | None = None
        self.pid: int | None = None
        self.log_path: Path | None = None
        self.error: str | None = None
        #: A mapped instance's ``map_index_template`` rendered after its try (its readable name).
        self.rendered_map_index: str | None = None
        self.next_retry_at: float | None = None
        #: Task ids a branch / short-circuit asked to skip during the current attempt.
        self.skip_requests: list[str] = []
        #: False once this process learns another one owns the row (it then records nothing).
        self.owned = True
        #: Set when this instance resumes from a deferral: the method to call instead of ``execute`` and its
        #: keyword arguments (the trigger's payload under ``"event"``). The try number does not change.
        self.next_method: str | None = None
        self.next_kwargs: dict[str, Any] | None = None
        #: The trigger row it waits on while deferred.
        self.trigger_id: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.map_index)

    @property
    def label(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index}"

    # --- XCom -------------------------------------------------------------------------------------------

    def xcom_push(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``. The size limit is checked before anything is written."""
        text = encode_value(value, max_size=self.xcom_max_size, key=key, task_label=repr(self.label))
        self.store.set_xcom(self.dag_run, self.task_id, self.map_index, key, text)

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        key: str = XCOM_RETURN_KEY,
        map_indexes: int | Iterable[int] | None = None,
        default: Any = None,
        dag_id: str | None = None,
    ) -> Any:
        """Airflow's semantics: one task id gives its value (a list for a mapped task); a list gives a list."""
        single = task_ids is None or isinstance(task_ids, str)
        ids = [self.task_id if task_ids is None else task_ids] if single else list(task_ids)  # type: ignore[arg-type]
        rows = self.store.get_xcoms(self.dag_run, ids, key)
        wanted_indexes: set[int] | None = None
        if map_indexes is not None:
            wanted_indexes = {map_indexes} if isinstance(map_indexes, int) else set(map_indexes)
        by_task: dict[str, list[tuple[int, Any]]] = {}
        for tid, index, text in rows:
            if wanted_indexes is not None and index not in wanted_indexes:
                continue
            by_task.setdefault(tid, []).append((index, None if text is None else decode_value(text)))
        dag = self.task.dag

        def value_of(tid: str) -> Any:
            found = by_task.get(tid)
            mapped = dag is not None and tid in dag.task_dict and dag.task_dict[tid].is_mapped
            if mapped and not (isinstance(map_indexes, int)):
                return [v for _, v in sorted(found or [])]
            if not found:
                return default
            return found[0][1]

        if single:
            return value_of(ids[0])
        return [value_of(tid) for tid in ids]

    # --- skipping ---------------------------------------------------------------------------------------

    def skip_tasks(self, task_ids: Iterable[str]) -> None:
        """Ask the runner to mark these tasks skipped once this attempt succeeds (branching)."""
        self.skip_requests.extend(task_ids)

    def __repr__(self) -> str:
        return f"<TaskInstance {self.label} try {self.try_number} {self.state.value}>"
