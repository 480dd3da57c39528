"""``zonda tasks test``: one task, no dependencies, nothing recorded (state and XComs stay in memory).

Its upstream tasks do not run, so their XComs exist only if a recorded run (``zonda dags test``, a scheduled or
triggered run) of the same logical date or run id has them: they are read from it, never written. A task that
needs an upstream XCom nobody produced stops with an error that says so, instead of getting ``None`` or ``[]``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException
from zonda.runner.store import MemoryRunStore
from zonda.state import TaskInstanceState

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG
    from zonda.runner.instance import TaskInstance
    from zonda.runner.store import DagRunInfo

#: States of an upstream task that ran (or was skipped) in a recorded run: a pull of its XCom then gives what a
#: real run gives, None when it pushed nothing.
_RAN = frozenset({TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED, TaskInstanceState.FAILED})


class UpstreamXComMissing(ZondaException):
    """``tasks test`` of a task whose upstream task's XCom was never produced."""


@dataclass
class TaskTestOutcome:
    ti: TaskInstance
    xcoms: dict[str, Any]
    log_text: str


@dataclass
class RecordedRun:
    """A run in the metastore whose upstream XComs ``tasks test`` may read (never write)."""

    run: DagRunInfo
    states: dict[str, str | None]
    xcom_store: Any  # has get_xcoms(run, task_ids, key)

    def get_xcoms(self, task_ids: Sequence[str], key: str) -> list[tuple[str, int, str | None]]:
        return self.xcom_store.get_xcoms(self.run, list(task_ids), key) if task_ids else []

    def close(self) -> None:
        self.xcom_store.close()
        self.xcom_store.metastore.dispose()


class TaskTestStore(MemoryRunStore):
    """The tested task's own state and XComs in memory; other tasks' XComs from ``recorded`` when given. A pull
    of a task of the DAG that did not run raises :class:`UpstreamXComMissing` (remembered in ``missing``)."""

    def __init__(self, dag: DAG, task_id: str, recorded: RecordedRun | None, how_to_run: str) -> None:
        super().__init__()
        self.dag = dag
        self.task_id = task_id
        self.recorded = recorded
        self.how_to_run = how_to_run
        self.missing: UpstreamXComMissing | None = None

    def get_xcoms(self, run: DagRunInfo, task_ids: Sequence[str], key: str) -> list[tuple[str, int, str | None]]:
        own = [tid for tid in task_ids if tid == self.task_id]
        others = [tid for tid in task_ids if tid != self.task_id and tid in self.dag.task_dict]
        found = super().get_xcoms(run, own, key)
        if self.recorded is not None:
            found += self.recorded.get_xcoms(others, key)
        have = {tid for tid, _, _ in found}
        for tid in others:
            if tid in have:
                continue
            state = self.recorded.states.get(tid) if self.recorded is not None else None
            if state in _RAN:
                continue  # it ran and pushed nothing under this key: None, as in a real run
            self.missing = UpstreamXComMissing(self._explain(tid, key, state))
            raise self.missing
        return sorted(found, key=lambda item: (item[0], item[1]))

    def _explain(self, upstream: str, key: str, state: str | None) -> str:
        what = f"task {self.task_id!r} needs XCom {key!r} of upstream task {upstream!r}"
        if self.recorded is None:
            return (
                f"{what}, which has not run: `zonda tasks test` runs one task and records nothing, so no XCom of an "
                f"earlier `tasks test` is kept; {self.how_to_run}"
            )
        return (
            f"{what}, which has not run in run {self.recorded.run.run_id!r} (its state: {state or 'none'}); "
            f"{self.how_to_run}"
        )


def _how_to_run(dag: DAG, task_id: str, when: str) -> str:
    return (
        f"run the DAG first with `zonda dags test {dag.dag_id} {when}`, then `zonda tasks test {dag.dag_id} "
        f"{task_id} {when}` reads that run's XComs"
    )


def _date_argument(when: datetime | None) -> str:
    """How to type ``when`` on the command line: the date alone at midnight UTC (today's date when unknown)."""
    from datetime import UTC

    from zonda.timezone import utcnow

    when = (when or utcnow()).astimezone(UTC)
    return when.date().isoformat() if when.time() == datetime.min.time() else when.isoformat()


def find_recorded_run(
    settings: Settings,
    dag: DAG,
    *,
    logical_date: datetime | None = None,
    run_id: str | None = None,
    plugins: Any = None,
) -> RecordedRun | None:
    """The DAG's run with this run id or logical date in an existing metastore (none is created), or None."""
    from sqlalchemy import select

    from zonda.metastore import tables as t
    from zonda.metastore.db import Metastore
    from zonda.runner.store import DagRunInfo, MetastoreRunStore, XComBackendStore

    if logical_date is None and run_id is None:
        return None
    metastore = None
    try:
        metastore = Metastore.existing(settings)
        if metastore is None:
            return None
        dr, ti = t.dag_run, t.task_instance
        query = select(dr).where(dr.c.dag_id == dag.dag_id)
        query = query.where(dr.c.run_id == run_id) if run_id else query.where(dr.c.logical_date == logical_date)
        with metastore.engine.connect() as conn:
            row = conn.execute(query.order_by(dr.c.id.desc())).first()
            states = (
                conn.execute(select(ti.c.task_id, ti.c.state).where(ti.c.dag_run_id == row.id)).all() if row else []
            )
    except Exception as exc:  # the metastore is optional here: the task still runs, without recorded XComs
        if metastore is not None:
            metastore.dispose()
        print(f"warning: cannot read recorded runs from the metastore ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    if row is None:
        metastore.dispose()
        return None
    store: Any = MetastoreRunStore(metastore)
    backend = plugins.call_first("zonda_xcom_backend") if plugins is not None else None
    if backend is not None:
        store = XComBackendStore(store, backend)
    by_task: dict[str, str | None] = {}
    for task_id, state in states:
        # A mapped task ran when any of its instances did.
        if by_task.get(task_id) not in _RAN:
            by_task[task_id] = state
    return RecordedRun(run=DagRunInfo.from_row(row), states=by_task, xcom_store=store)


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
    recorded: RecordedRun | None = None,
) -> TaskTestOutcome:
    """Run ``task_id`` alone. With ``recorded`` (see :func:`find_recorded_run`) it runs as part of that run:
    same run id, logical date and conf (unless ``conf`` is given), upstream XComs read from it."""
    from zonda import serde
    from zonda.runner.dag_runner import InProcessDagRunner, make_run_info
    from zonda.runner.instance import TaskInstance
    from zonda.runner.task_runner import TaskRunner
    from zonda.xcom_arg import find_xcom_args

    node = dag.get_task(task_id)
    if recorded is not None:
        conf = recorded.run.conf if conf is None else conf
        run = make_run_info(dag, recorded.run.logical_date, conf=conf, run_id=recorded.run.run_id, run_type="test")
    else:
        run = make_run_info(dag, logical_date, conf=conf, run_id=None, run_type="test")
    store = TaskTestStore(
        dag,
        task_id,
        recorded,
        _how_to_run(dag, task_id, _date_argument(run.logical_date if recorded else logical_date)),
    )
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
        probe = TaskInstance(node, run, store)
        if node.is_mapped:
            from zonda.xcom_arg import resolve_references

            expansion = node.expansion(lambda v: resolve_references(v, {"ti": probe, "params": params}))
            if not expansion:
                raise ZondaException(
                    f"mapped task {task_id!r} expands to no instance: its mapped input is empty in this run"
                )
            if not 0 <= map_index < len(expansion):
                raise ZondaException(f"--map-index must be between 0 and {len(expansion) - 1} for {task_id!r}")
            operator = node.unmap(expansion[map_index])
        else:
            # Upstream outputs passed as arguments are checked before the task starts (one clear line, no log).
            for arg in find_xcom_args([getattr(node, name, None) for name in node.template_fields]):
                probe.xcom_pull(task_ids=arg.operator.task_id, key=arg.key)
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
    if store.missing is not None:
        raise store.missing  # pulled inside a template or the task's code
    xcoms = {key[3]: serde.loads(value) for key, value in store.xcoms.items() if key[1] == task_id}
    return TaskTestOutcome(ti=ti, xcoms=xcoms, log_text=log_text)
