"""The DAG: a named graph of tasks with a schedule.

Everything a user can get wrong when defining a DAG is checked here, when the DAG is defined, and reported with
the DAG's id and the fix: a bad schedule (including one that never fires, such as ``0 0 30 2 *``, and a
timetable that raises when asked for its next run), a cycle (the cycle is spelled out), a duplicate task id, an unknown
trigger rule (checked by the operator), a param default that violates its own type.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda import _context_stack
from zonda.exceptions import DagCycleError, DagDefinitionError, DuplicateTaskIdError, TaskNotFound
from zonda.params import ParamsDict
from zonda.schedule import Timetable, check_timetable_fires, parse_schedule
from zonda.timezone import coerce_datetime

if TYPE_CHECKING:
    from zonda.operators.base import Node
    from zonda.taskgroup import TaskGroup

_DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class DAG:
    """A pipeline. Use as a context manager (``with DAG(...):``) or through :func:`dag`."""

    def __init__(
        self,
        dag_id: str,
        *,
        description: str | None = None,
        schedule: str | timedelta | Timetable | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = False,
        default_args: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        max_active_runs: int | None = None,
        max_active_tasks: int | None = None,
        dagrun_timeout: timedelta | None = None,
        tags: Iterable[str] | None = None,
        doc_md: str | None = None,
        template_searchpath: str | Iterable[str] | None = None,
        user_defined_macros: dict[str, Any] | None = None,
        user_defined_filters: dict[str, Callable[..., Any]] | None = None,
        render_template_as_native_obj: bool = False,
        on_success_callback: Callable[..., Any] | None = None,
        on_failure_callback: Callable[..., Any] | None = None,
        is_paused_upon_creation: bool | None = None,
        owner_links: dict[str, str] | None = None,
        fileloc: str | None = None,
        dag_display_name: str | None = None,
        deadline: Any = None,
    ) -> None:
        if not isinstance(dag_id, str) or not _DAG_ID_RE.match(dag_id) or len(dag_id) > 250:
            raise DagDefinitionError(f"invalid dag_id {dag_id!r}: use at most 250 letters, digits, '_', '-' and '.'")
        self.dag_id = dag_id
        if dag_display_name is not None and not isinstance(dag_display_name, str):
            raise DagDefinitionError(f"DAG {dag_id!r}: dag_display_name must be a string, not {dag_display_name!r}")
        #: The name shown in the UI, the API and the CLI; the id when not given (as Airflow's).
        self.dag_display_name = dag_display_name or dag_id
        self.description = description
        self.default_args = dict(default_args or {})
        self.timetable = parse_schedule(schedule, dag_id=dag_id)
        self.schedule = schedule
        start = start_date if start_date is not None else self.default_args.get("start_date")
        self.start_date = coerce_datetime(start)
        self.end_date = coerce_datetime(end_date if end_date is not None else self.default_args.get("end_date"))
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise DagDefinitionError(f"DAG {dag_id!r}: end_date {self.end_date} is before start_date {self.start_date}")
        # No start_date with a schedule is allowed, as in Airflow 3: the scheduler starts it from when it first
        # sees the DAG (see the scheduler's run creation). A schedule that never fires or raises is refused here.
        check_timetable_fires(self.timetable, self.start_date, dag_id=dag_id)
        self.catchup = catchup
        self.params = ParamsDict(self.default_args.get("params")).merged(params)
        try:
            self.params.validate_defaults()
        except Exception as exc:
            raise DagDefinitionError(f"DAG {dag_id!r}: {exc}") from None
        self.max_active_runs = max_active_runs
        limit = self.timetable.active_runs_limit
        if limit is not None and (max_active_runs is None or max_active_runs > limit):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: schedule {self.timetable.summary!r} allows at most {limit} active run(s), so "
                f"max_active_runs must be set to {limit} (it is {max_active_runs}); add max_active_runs={limit}"
            )
        self.max_active_tasks = max_active_tasks
        self.dagrun_timeout = dagrun_timeout
        self.tags = sorted(set(tags or []))
        self.doc_md = doc_md
        if isinstance(template_searchpath, str):
            template_searchpath = [template_searchpath]
        self.template_searchpath = list(template_searchpath or [])
        self.user_defined_macros = dict(user_defined_macros or {})
        self.user_defined_filters = dict(user_defined_filters or {})
        self.render_template_as_native_obj = render_template_as_native_obj
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.is_paused_upon_creation = is_paused_upon_creation
        self.owner_links = dict(owner_links or {})
        #: The run's deadline alerts (``deadline=`` takes one or a list, as in Airflow).
        self.deadline: list[Any] = []
        if deadline is not None:
            from zonda.deadlines import as_alerts

            self.deadline = as_alerts(deadline)
        self.fileloc = fileloc or _caller_file()
        self.task_dict: dict[str, Node] = {}
        self.task_groups: dict[str, TaskGroup] = {}
        #: ``(upstream id, downstream id) -> {"label": ...}`` for edges drawn through a ``Label``.
        self.edge_info: dict[tuple[str, str], dict[str, str]] = {}
        _context_stack.report_new_dag(self)

    # --- definition -------------------------------------------------------------------------------------

    def __enter__(self) -> DAG:
        _context_stack.push_dag(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        _context_stack.pop_dag()
        if exc_type is None:
            self.validate()

    def add_task(self, task: Node) -> None:
        if task.task_id in self.task_dict and self.task_dict[task.task_id] is not task:
            raise DuplicateTaskIdError(
                f"DAG {self.dag_id!r} already has a task with task_id {task.task_id!r}; task ids must be "
                "unique within a DAG (rename one, or put them in different TaskGroups)"
            )
        if task.task_id in self.task_groups:
            raise DuplicateTaskIdError(f"DAG {self.dag_id!r}: task_id {task.task_id!r} is already used by a task group")
        self.task_dict[task.task_id] = task

    def set_edge_label(self, upstream_id: str, downstream_id: str, label: str) -> None:
        """Name the edge ``upstream_id >> downstream_id`` in the graph view (see :class:`zonda.Label`)."""
        self.edge_info[(upstream_id, downstream_id)] = {"label": label}

    def _register_group(self, group: TaskGroup) -> None:
        if group.group_id in self.task_groups or group.group_id in self.task_dict:
            raise DuplicateTaskIdError(
                f"DAG {self.dag_id!r} already has a task or task group with id {group.group_id!r}"
            )
        self.task_groups[group.group_id] = group

    def _unique_group_id(self, group_id: str, parent: TaskGroup | None) -> str:
        """``@task_group`` functions called twice get ``name__1``, ``name__2``, as decorated tasks do."""
        full = parent.child_id(group_id) if parent else group_id
        if full not in self.task_groups:
            return group_id
        n = 1
        while (parent.child_id(f"{group_id}__{n}") if parent else f"{group_id}__{n}") in self.task_groups:
            n += 1
        return f"{group_id}__{n}"

    def unique_task_id(self, task_id: str) -> str:
        """Decorated tasks called more than once get ``name__1``, ``name__2``... (Airflow's rule)."""
        if task_id not in self.task_dict:
            return task_id
        base = re.sub(r"__\d+$", "", task_id)
        n = 1
        while f"{base}__{n}" in self.task_dict:
            n += 1
        return f"{base}__{n}"

    def validate(self) -> None:
        """Check the whole graph. Called when a ``with DAG`` block ends and when a DAG file is loaded."""
        for task in self.task_dict.values():
            for other in task.upstream_task_ids | task.downstream_task_ids:
                if other not in self.task_dict:
                    raise DagDefinitionError(
                        f"DAG {self.dag_id!r}: task {task.task_id!r} depends on {other!r}, which is not in this DAG"
                    )
        self.topological_order()

    # --- reading ----------------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[Node]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> Node:
        try:
            return self.task_dict[task_id]
        except KeyError:
            from zonda.suggestions import unknown_name

            known = ", ".join(sorted(self.task_dict)[:20]) or "(none)"
            message = unknown_name(
                f"DAG {self.dag_id!r} has no task {task_id!r}", task_id, self.task_dict, f"its tasks: {known}"
            )
            raise TaskNotFound(message) from None

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    @property
    def roots(self) -> list[Node]:
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[Node]:
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    def topological_order(self) -> list[Node]:
        """Tasks in dependency order (definition order among independent tasks); raises on a cycle."""
        indegree = {tid: len(t.upstream_task_ids) for tid, t in self.task_dict.items()}
        order_index = {tid: i for i, tid in enumerate(self.task_dict)}
        ready = [tid for tid, n in indegree.items() if n == 0]
        ready.sort(key=order_index.__getitem__, reverse=True)
        result: list[Node] = []
        while ready:
            tid = ready.pop()
            result.append(self.task_dict[tid])
            released = []
            for child in self.task_dict[tid].downstream_task_ids:
                indegree[child] -= 1
                if indegree[child] == 0:
                    released.append(child)
            released.sort(key=order_index.__getitem__, reverse=True)
            ready.extend(released)
        if len(result) != len(self.task_dict):
            cycle = self._find_cycle({tid for tid, n in indegree.items() if n > 0})
            raise DagCycleError(f"DAG {self.dag_id!r} has a cycle: {' -> '.join(cycle)}; remove one of these edges")
        return result

    def _find_cycle(self, candidates: set[str]) -> list[str]:
        visiting: list[str] = []
        on_path: set[str] = set()
        done: set[str] = set()

        def visit(tid: str) -> list[str] | None:
            visiting.append(tid)
            on_path.add(tid)
            for child in sorted(self.task_dict[tid].downstream_task_ids):
                if child in on_path:
                    return [*visiting[visiting.index(child) :], child]
                if child not in done and child in candidates:
                    found = visit(child)
                    if found:
                        return found
            visiting.pop()
            on_path.discard(tid)
            done.add(tid)
            return None

        for tid in sorted(candidates):
            if tid not in done:
                found = visit(tid)
                if found:
                    return found
        return sorted(candidates)

    @property
    def folder(self) -> Path:
        return Path(self.fileloc).parent

    def template_folders(self) -> list[str]:
        return [str(self.folder), *self.template_searchpath]

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id}>"


def _caller_file() -> str:
    """The DAG file defining this DAG: the first frame outside Zonda's own modules."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name == "zonda" or name.startswith("zonda.")) or name.startswith("zonda.example_dags"):
            return frame.f_code.co_filename
        frame = frame.f_back
    return "<unknown>"


def dag(dag_id: str | Callable[..., Any] | None = None, **dag_kwargs: Any) -> Any:
    """``@dag``: the decorated function's body defines the DAG; calling it returns the DAG.

    The function's parameters become DAG params (their defaults are the param defaults), as in Airflow.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., DAG]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def build(*args: Any, **kwargs: Any) -> DAG:
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            params = dict(dag_kwargs.get("params") or {})
            params.update(bound.arguments)
            options = {**dag_kwargs, "params": params}
            options.setdefault("doc_md", fn.__doc__)
            options.setdefault("fileloc", inspect.getsourcefile(fn) or "<unknown>")
            with DAG(name or fn.__name__, **options) as new_dag:
                from zonda.xcom_arg import DagParamArg

                fn(**{key: DagParamArg(key) for key in bound.arguments})
            return new_dag

        return build

    if callable(dag_id):
        name = None
        return decorate(dag_id)
    name = dag_id
    return decorate
