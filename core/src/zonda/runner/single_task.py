"""``zonda tasks test``: one task, no dependencies, nothing recorded (state and XComs stay in memory)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG
    from zonda.runner.instance import TaskInstance


@dataclass
class TaskTestOutcome:
    ti: TaskInstance
    xcoms: dict[str, Any]
    log_text: str


def test_task(
    dag: DAG,
    task_id: str,
    logical_date: datetime | None,
    *,
    settings: Settings | None,
    conf: Mapping[str, Any] | None = None,
    map_index: int = -1,
    echo: bool = False,
    plugins: Any = None,
) -> TaskTestOutcome:
    from zonda import serde
    from zonda.runner.dag_runner import InProcessDagRunner, make_run_info
    from zonda.runner.instance import TaskInstance
    from zonda.runner.store import MemoryRunStore
    from zonda.runner.task_runner import TaskRunner

    node = dag.get_task(task_id)
    store = MemoryRunStore()
    run = make_run_info(dag, logical_date, conf=conf, run_id=None, run_type="test")
    store.create_dag_run(run)
    params = dag.params.resolve(conf)
    with tempfile.TemporaryDirectory(prefix="zonda-task-test-") as tmp:
        runner = InProcessDagRunner(
            dag,
            store,
            settings=settings,
            log_folder=Path(tmp),
            xcom_max_size=int(settings.get("xcom", "max_size")) if settings else 1024 * 1024,
            plugins=plugins,
        )
        operator: Any = node
        if node.is_mapped:
            from zonda.xcom_arg import resolve_references

            probe = TaskInstance(node, run, store)
            expansion = node.expansion(lambda v: resolve_references(v, {"ti": probe, "params": params}))
            if not expansion:
                raise ZondaException(
                    f"mapped task {task_id!r} maps over upstream output that `tasks test` does not have "
                    "(nothing is recorded); give the mapped input literally or use `zonda dags test`"
                )
            if not 0 <= map_index < len(expansion):
                raise ZondaException(f"--map-index must be between 0 and {len(expansion) - 1} for {task_id!r}")
            operator = node.unmap(expansion[map_index])
        ti = TaskInstance(
            node,
            run,
            store,
            map_index=map_index if node.is_mapped else -1,
            xcom_max_size=runner.xcom_max_size,
        )
        ti.max_tries = 0
        TaskRunner(runner.make_environment(params, test_mode=True, echo=echo)).run_attempt(ti, operator)
        log_text = ti.log_path.read_text(encoding="utf-8") if ti.log_path and ti.log_path.exists() else ""
    xcoms = {key[3]: serde.loads(value) for key, value in store.xcoms.items() if key[1] == task_id}
    return TaskTestOutcome(ti=ti, xcoms=xcoms, log_text=log_text)
