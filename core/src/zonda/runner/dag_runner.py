"""Run a whole DAG in this process, in dependency order: ``zonda dags test`` and ``zonda.testing.run_dag``.

The decisions are the scheduler's (:mod:`zonda.decision_engine`): which tasks may run, which are settled
skipped or upstream_failed, which ready instance runs next (priority, then creation order), when the run ends.
Event driven: when a task instance finishes, only its downstream tasks are decided again, so there is no polling
delay between tasks. Retries wait on a timer heap while other ready tasks keep running. Mapped tasks expand once
their trigger rule lets them run.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ParamValidationError, ZondaException
from zonda.runner.instance import TaskInstance
from zonda.runner.task_runner import RunEnvironment, TaskRunner
from zonda.runner.trigger_rules import Decision
from zonda.state import FINISHED_STATES, DagRunState
from zonda.state import TaskInstanceState as S
from zonda.timezone import utcnow

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.dag_definition import DAG
    from zonda.operators.base import Node
    from zonda.runner.log_handlers import TaskLogHandler
    from zonda.runner.store import DagRunInfo, RunStore

log = logging.getLogger("zonda.runner")


@dataclass
class DagRunResult:
    run: DagRunInfo
    task_instances: list[TaskInstance]
    deadlocked: list[str]

    @property
    def state(self) -> str:
        return self.run.state

    @property
    def succeeded(self) -> bool:
        return self.run.state == DagRunState.SUCCESS.value

    def ti(self, task_id: str, map_index: int = -1) -> TaskInstance:
        for ti in self.task_instances:
            if ti.task_id == task_id and ti.map_index == map_index:
                return ti
        raise KeyError(f"no task instance {task_id}[{map_index}] in this run")

    def states(self) -> dict[str, str]:
        """``task_id`` (``task_id[i]`` for mapped instances) -> state, for assertions and summaries."""
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): ti.state.value
            for ti in self.task_instances
        }


def make_run_info(
    dag: DAG,
    logical_date: datetime | None,
    *,
    conf: Mapping[str, Any] | None,
    run_id: str | None,
    run_type: str,
) -> DagRunInfo:
    from zonda.identifiers import validate_conf, validate_run_id
    from zonda.runner.store import DagRunInfo

    if run_id is not None:
        validate_run_id(run_id)
    conf = validate_conf(conf)
    when = logical_date or utcnow()
    interval = dag.timetable.infer_data_interval(when)
    return DagRunInfo(
        dag_id=dag.dag_id,
        run_id=run_id or f"{run_type}__{when.isoformat()}",
        logical_date=when,
        data_interval_start=interval.start,
        data_interval_end=interval.end,
        run_type=run_type,
        conf=dict(conf or {}),
        queued_at=utcnow(),
    )


class InProcessDagRunner:
    def __init__(
        self,
        dag: DAG,
        store: RunStore,
        *,
        settings: Settings | None,
        log_folder: Path,
        xcom_max_size: int = 1024 * 1024,
        extra_macros: Mapping[str, Any] | None = None,
        max_retry_wait: float = 3600.0,
        plugins: Any = None,
    ) -> None:
        self.dag = dag
        backend = plugins.call_first("zonda_xcom_backend") if plugins is not None else None
        if backend is not None:
            from zonda.runner.store import XComBackendStore

            store = XComBackendStore(store, backend)
        self.store = store
        self.settings = settings
        self.log_folder = log_folder
        self.xcom_max_size = xcom_max_size
        self.extra_macros = dict(extra_macros or {})
        self.max_retry_wait = max_retry_wait
        self.plugins = plugins
        self._log_handler: TaskLogHandler | None = None

    def task_log_handler(self) -> TaskLogHandler:
        """The handler ``[logging] task_log_handler`` chooses, built once for this runner (so a class is
        imported and a remote client set up once per run, not per task)."""
        if self._log_handler is None:
            from zonda.runner.log_handlers import load_task_log_handler

            self._log_handler = load_task_log_handler(self.settings, plugins=self.plugins, log_folder=self.log_folder)
        return self._log_handler

    def run(
        self,
        logical_date: datetime | None = None,
        *,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        run_type: str = "test",
    ) -> DagRunResult:
        """Run the DAG now. ``run_type`` "test" (the default) marks the run as owned by this process: a
        scheduler sharing the metastore leaves it alone."""
        dag = self.dag
        try:
            params = dag.params.resolve(conf)
        except ParamValidationError as exc:
            raise ParamValidationError(f"DAG {dag.dag_id!r}: {exc}") from None
        order = dag.topological_order()
        self.task_log_handler()  # a misconfigured handler fails the command before any state is written
        paused = self.settings is None or bool(self.settings.get("core", "dags_are_paused_at_creation"))
        self.store.sync_dag(dag, paused_at_creation=paused)
        run = make_run_info(dag, logical_date, conf=conf, run_id=run_id, run_type=run_type)
        run.state = DagRunState.RUNNING.value
        run.start_date = utcnow()
        self.store.create_dag_run(run)
        self._notify("on_dag_run_running", dag_run=run, msg="started")
        result = _Execution(self, run, order, params).run()
        if result.succeeded:
            self._notify("on_dag_run_success", dag_run=run, msg="success")
        else:
            self._notify("on_dag_run_failed", dag_run=run, msg="deadlocked" if result.deadlocked else "task_failure")
        return result

    def _notify(self, hook: str, **kwargs: Any) -> None:
        if self.plugins is not None:
            self.plugins.call(hook, **kwargs)

    def make_environment(
        self, params: Mapping[str, Any], *, test_mode: bool = False, echo: bool = False
    ) -> RunEnvironment:
        from zonda.macros import default_macros
        from zonda.masking import get_masker, is_sensitive_name

        # Params named like secrets (api_token, password...) are masked wherever they end up: logs, errors,
        # rendered templates.
        for key, value in params.items():
            if is_sensitive_name(key):
                get_masker().add(value, name=key)
        dag = self.dag
        plugin_macros: dict[str, Any] = {}
        if self.plugins is not None:
            for result in self.plugins.call("zonda_template_macros"):
                plugin_macros.update(result)
        macros = default_macros({**plugin_macros, **self.extra_macros})

        def renderer() -> Any:
            from zonda.templating import TemplateRenderer

            return TemplateRenderer(
                dag.template_folders(),
                user_defined_macros=dag.user_defined_macros,
                user_defined_filters=dag.user_defined_filters,
                native=dag.render_template_as_native_obj,
            )

        return RunEnvironment(
            settings=self.settings,
            log_folder=self.log_folder,
            renderer_factory=renderer,
            macros=macros,
            test_mode=test_mode,
            echo_logs=echo,
            params=params,
            plugins=self.plugins,
            # `tasks test` records nothing, so its lines go to its temporary file only, whatever the handler.
            log_handler=None if test_mode else self.task_log_handler(),
        )


class _Execution:
    """The mutable state of one run; lives only while :meth:`InProcessDagRunner.run` runs.

    What runs next, what is settled and when the run ends are the decision engine's answers
    (:mod:`zonda.decision_engine`), the scheduler's too; this class applies them to its instances and runs the
    ready ones one at a time, in the scheduler's order (priority, then creation)."""

    def __init__(self, runner: InProcessDagRunner, run: DagRunInfo, order: list[Node], params: Mapping[str, Any]):
        from zonda.decision_engine import DagShape

        self.runner = runner
        self.dag = runner.dag
        self.run_info = run
        self.store = runner.store
        self.shape = DagShape.from_dag(self.dag)
        self.order = order
        self.tis: dict[str, list[TaskInstance]] = {}
        #: Creation order of each instance, as the scheduler's row ids: ties between equal priorities.
        self.created: dict[tuple[str, int], int] = {}
        self._creation = itertools.count()
        self.ready: list[tuple[tuple[int, int], str, int]] = []
        self.retries: list[tuple[float, tuple[int, int], str, int]] = []
        self.task_runner = TaskRunner(runner.make_environment(params))
        self.operators: dict[tuple[str, int], Any] = {}

    # --- setup ------------------------------------------------------------------------------------------

    def _create_instances(self) -> None:
        """One instance per task; a mapped task whose length the DAG file fixes gets all of its at once (see
        :func:`~zonda.serialization.parse_time_map_count`), the scheduler's rows likewise."""
        from zonda.serialization import expand_spec, parse_time_map_count

        rows = []
        for node in self.order:
            count = parse_time_map_count(expand_spec(node)) if node.is_mapped else None
            indexes = range(count) if count else [-1]
            if count:  # literals only: nothing to resolve
                for index, kwargs in enumerate(node.expansion(lambda value: value)):
                    self.operators[(node.task_id, index)] = node.unmap(kwargs)
            self.tis[node.task_id] = []
            for index in indexes:
                ti = TaskInstance(
                    node, self.run_info, self.store, map_index=index, xcom_max_size=self.runner.xcom_max_size
                )
                self.tis[node.task_id].append(ti)
                self.created[ti.key] = next(self._creation)
                rows.append(_ti_row(node, index))
        self.store.create_task_instances(self.run_info, rows)

    # --- main loop ----------------------------------------------------------------------------------------

    def run(self) -> DagRunResult:
        self._create_instances()
        self._decide(None)
        while self.ready or self.retries:
            if not self.ready:
                due, _, tid, index = self.retries[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, self.runner.max_retry_wait))
                    continue
                heapq.heappop(self.retries)
                self._queue(tid, index)
                continue
            _, tid, index = heapq.heappop(self.ready)
            ti = self._ti(tid, index)
            if ti.state is not S.QUEUED:
                continue  # skipped by a branch or short-circuit while it waited in the queue
            self._run_one(ti)
            self._release_due_retries()
        return self._finish()

    def _release_due_retries(self) -> None:
        now = time.monotonic()
        while self.retries and self.retries[0][0] <= now:
            _, _, tid, index = heapq.heappop(self.retries)
            self._queue(tid, index)

    def _ti(self, task_id: str, map_index: int) -> TaskInstance:
        for ti in self.tis[task_id]:
            if ti.map_index == map_index:
                return ti
        raise KeyError((task_id, map_index))

    def _order_key(self, ti: TaskInstance) -> tuple[int, int]:
        from zonda.decision_engine import run_order_key

        return run_order_key(self.shape.tasks[ti.task_id].priority, self.created[ti.key])

    def _queue(self, task_id: str, map_index: int) -> None:
        ti = self._ti(task_id, map_index)
        if ti.state in FINISHED_STATES:
            return  # skipped while it waited for a retry
        if self.runner.plugins is not None:
            self.runner.plugins.call("task_instance_mutation", task_instance=ti)
        ti.state = S.QUEUED
        ti.queued_dttm = utcnow()
        heapq.heappush(self.ready, (self._order_key(ti), task_id, map_index))

    def _run_one(self, ti: TaskInstance) -> None:
        node = ti.task
        operator = self.operators.get(ti.key) or node
        state = self.task_runner.run_attempt(ti, operator)
        if state is S.UP_FOR_RETRY:
            assert ti.next_retry_at is not None
            heapq.heappush(self.retries, (ti.next_retry_at, self._order_key(ti), ti.task_id, ti.map_index))
            return
        changed = {ti.task_id}
        if state is S.SUCCESS and ti.skip_requests:
            changed |= self._skip(ti.skip_requests)
        self._decide(self._downstream_of(changed))

    def _downstream_of(self, task_ids: Iterable[str]) -> set[str]:
        return {child for tid in task_ids for child in self.shape.tasks[tid].downstream}

    # --- decisions ------------------------------------------------------------------------------------------

    def _states_of(self, task_id: str) -> list[S]:
        return [ti.state for ti in self.tis[task_id]]

    def _instances_of(self, task_id: str) -> list[tuple[int, S]]:
        return [(ti.map_index, ti.state) for ti in self.tis[task_id]]

    def _decide(self, candidates: Iterable[str] | None) -> None:
        """Apply the engine's decisions for ``candidates`` (None: every task) and what they settle."""
        from zonda.decision_engine import EXPAND, decide_instances

        for task_id, decision, map_index in decide_instances(self.shape, self._instances_of, candidates):
            node = self.dag.task_dict[task_id]
            if decision == EXPAND:
                self._expand(node, queue=False)
                continue
            if decision is Decision.RUN:
                if not self._past_dependency_met(node):
                    continue
                if node.is_mapped and self.tis[task_id][0].map_index == -1:
                    self._expand(node)
                else:
                    for ti in self.tis[task_id]:
                        if ti.state is S.NONE and map_index in (None, ti.map_index):
                            self._queue(task_id, ti.map_index)
                continue
            self._settle(task_id, S.SKIPPED if decision is Decision.SKIP else S.UPSTREAM_FAILED, map_index)

    def _settle(self, task_id: str, state: S, map_index: int | None = None) -> None:
        now = utcnow()
        for ti in self.tis[task_id]:
            if ti.state in FINISHED_STATES or map_index not in (None, ti.map_index):
                continue
            ti.state = state
            ti.end_date = now
            self.store.settle_task_instance(self.run_info, task_id, ti.map_index, state, end_date=now)

    def _skip(self, task_ids: Iterable[str]) -> set[str]:
        """A branch's or short-circuit's skips, on every listed instance that has not started a try (the
        engine's rule); the tasks that changed. Their downstream tasks are decided afterwards, together."""
        from zonda.decision_engine import is_skippable

        settled = set()
        now = utcnow()
        for tid in task_ids:
            for ti in self.tis[tid]:
                if not is_skippable(ti.state):
                    continue
                ti.state = S.SKIPPED  # a queued one is dropped when it reaches the front (see run)
                ti.end_date = now
                self.store.settle_task_instance(self.run_info, tid, ti.map_index, S.SKIPPED, end_date=now)
                settled.add(tid)
        return settled

    def _past_dependency_met(self, node: Node) -> bool:
        if not getattr(node, "depends_on_past", False):
            return True
        previous = getattr(self.store, "previous_task_states", None)
        if previous is None:
            return True
        states = list(previous(self.dag.dag_id, node.task_id, self.run_info.logical_date))
        return all(state in (S.SUCCESS.value, S.SKIPPED.value) for state in states)

    def _expand(self, node: Any, *, queue: bool = True) -> None:
        """Create one task instance per element of the mapped input (none: the task is skipped), and queue
        them, or (``queue=False``, a task of a mapped group) leave them for their own decisions."""
        placeholder = self.tis[node.task_id][0]
        context = {"ti": placeholder, "params": self.task_runner.env.params or {}}
        try:
            from zonda.xcom_arg import resolve_references

            expansion = node.expansion(lambda value: resolve_references(value, context))
        except ZondaException as exc:
            placeholder.error = str(exc)
            self._settle(node.task_id, S.FAILED)
            return
        if not expansion:
            log.info("mapped task %s has nothing to map over; skipping it", node.task_id)
            self._settle(node.task_id, S.SKIPPED)
            return
        # The new rows carry the task's columns (operator, pool, display name...) as the first row does.
        columns = {k: v for k, v in _ti_row(node, 0).items() if k not in ("task_id", "map_index", "state")}
        self.store.expand_task_instances(self.run_info, node.task_id, len(expansion), columns)
        instances = []
        first = self.created.pop(placeholder.key)
        for index, kwargs in enumerate(expansion):
            ti = TaskInstance(node, self.run_info, self.store, map_index=index, xcom_max_size=self.runner.xcom_max_size)
            instances.append(ti)
            # Index 0 takes the placeholder's place, the others come after every instance so far (as rows).
            self.created[ti.key] = first if index == 0 else next(self._creation)
            self.operators[(node.task_id, index)] = node.unmap(kwargs)
        self.tis[node.task_id] = instances
        for ti in instances if queue else ():
            self._queue(node.task_id, ti.map_index)

    # --- the end ----------------------------------------------------------------------------------------------

    def _finish(self) -> DagRunResult:
        from zonda.decision_engine import run_state

        run = self.run_info
        all_tis = [ti for node in self.order for ti in self.tis[node.task_id]]
        stuck = [node.task_id for node in self.order if any(ti.state is S.NONE for ti in self.tis[node.task_id])]
        failed = bool(stuck) or run_state(self.shape, self._states_of) != DagRunState.SUCCESS.value
        run.state = (DagRunState.FAILED if failed else DagRunState.SUCCESS).value
        run.end_date = utcnow()
        self.store.update_dag_run(run)
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        if stuck:
            log.error("DAG run %s deadlocked: %s could not run (depends_on_past not met?)", run.run_id, stuck)
        self._dag_callback(failed, all_tis, reason="deadlocked" if stuck else None)
        return DagRunResult(run=run, task_instances=all_tis, deadlocked=stuck)

    def _dag_callback(self, failed: bool, tis: list[TaskInstance], reason: str | None) -> None:
        env = self.task_runner.env
        call_dag_callbacks(
            self.dag,
            self.run_info,
            failed=failed,
            reason=reason,
            last_ti=last_task_instance(tis, failed=failed),
            params=env.params,
            settings=self.runner.settings,
            macros=env.macros,
        )


def last_task_instance(tis: Iterable[Any], *, failed: bool) -> Any:
    """The task instance a DAG callback's context is built from, as in Airflow: for a failed run the failed
    instance that ended last (an ``upstream_failed`` one when none failed itself), otherwise the instance that
    ended last. ``tis`` come in the DAG's order, which breaks ties (and places instances that never ended)."""
    ordered = list(tis)
    if not ordered:
        return None
    pools = [ordered]
    if failed:
        pools = [
            [ti for ti in ordered if _state(ti) == S.FAILED.value],
            [ti for ti in ordered if _state(ti) == S.UPSTREAM_FAILED.value],
            ordered,
        ]
    for pool in pools:
        if pool:
            ended = [(ti.end_date, i) for i, ti in enumerate(pool) if ti.end_date is not None]
            return pool[max(ended)[1]] if ended else pool[-1]
    return None


def _state(ti: Any) -> str:
    state = getattr(ti, "state", None)
    return getattr(state, "value", state) or ""


def call_dag_callbacks(
    dag: DAG,
    run: Any,
    *,
    failed: bool,
    reason: str | None = None,
    last_ti: Any = None,
    params: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    macros: Any = None,
) -> None:
    """Run the DAG's ``on_failure_callback`` or ``on_success_callback`` for an ended run (here, or in the DAG
    processor for runs the scheduler ended). A callback that raises is logged; the run's state stays.

    The context is Airflow's for a DAG callback: the full task context of ``last_ti`` (see
    :func:`last_task_instance`: ``ti``, ``task_instance``, ``task``, ``ds``, ``logical_date``, ``params``,
    ``conf``...) with ``dag``, ``dag_run``, ``run_id`` and ``reason`` (``success``, ``task_failure``,
    ``timed_out``, ``deadlocked``)."""
    from zonda.context import build_context

    callback = dag.on_failure_callback if failed else dag.on_success_callback
    if not callback:
        return
    context = build_context(
        dag=dag,
        task=getattr(last_ti, "task", None),
        dag_run=run,
        ti=last_ti,
        params=params if params is not None else _run_params(dag, run),
        settings=settings,
        macros=macros,
    )
    context["reason"] = reason or ("task_failure" if failed else "success")
    for fn in callback if isinstance(callback, list | tuple) else [callback]:
        try:
            fn(context)
        except Exception:
            log.exception("DAG %s callback raised; the run's state is unchanged", dag.dag_id)


def _run_params(dag: DAG, run: Any) -> Mapping[str, Any]:
    """The run's params (its conf over the DAG's defaults); the defaults alone if the conf no longer validates."""
    try:
        return dag.params.resolve(getattr(run, "conf", None) or {})
    except Exception:
        log.warning("DAG %s: the run's conf does not validate against the params any more; using defaults", dag.dag_id)
    try:
        return dag.params.resolve({})
    except Exception:
        return {}


def _ti_row(node: Any, map_index: int) -> dict[str, Any]:
    return {
        "task_id": node.task_id,
        "map_index": map_index,
        "state": None,
        "try_number": 0,
        "max_tries": int(getattr(node, "retries", 0) or 0),
        "operator": node.operator_name,
        "pool": getattr(node, "pool", "default_pool"),
        "pool_slots": getattr(node, "pool_slots", 1),
        "queue": getattr(node, "queue", "default"),
        "priority_weight": getattr(node, "priority_weight", 1),
        "task_display_name": getattr(node, "task_display_name", None),
    }
