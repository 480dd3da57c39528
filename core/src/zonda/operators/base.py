"""The operator base class, kept small on purpose.

An operator describes one unit of work (``execute(context)``) plus the task-level settings the task runner
honours: retries, timeouts, trigger rule, callbacks, templated fields. The *behaviour* behind those settings
(retrying, timing out, rendering templates, pushing XComs) lives in :mod:`zonda.runner`, not here, so custom
operators stay small and every operator gets the same semantics.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from zonda import _context_stack
from zonda.dependencies import DependencyMixin
from zonda.exceptions import DagDefinitionError
from zonda.setup_teardown import SetupTeardownMixin
from zonda.trigger_rule import TriggerRule

if TYPE_CHECKING:
    from zonda.context import Context
    from zonda.dag_definition import DAG
    from zonda.taskgroup import MappedTaskGroup, TaskGroup
    from zonda.xcom_arg import XComArg

#: Task-level settings every operator accepts, with their defaults. ``default_args`` may set any of them.
TASK_DEFAULTS: dict[str, Any] = {
    "owner": "zonda",
    "retries": 0,
    "retry_delay": timedelta(seconds=300),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "depends_on_past": False,
    "wait_for_downstream": False,
    "pool": "default_pool",
    "pool_slots": 1,
    "priority_weight": 1,
    "weight_rule": "downstream",
    "queue": "default",
    "do_xcom_push": True,
    "multiple_outputs": False,
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
    "on_execute_callback": None,
    "on_skipped_callback": None,
    "start_date": None,
    "end_date": None,
    "executor_config": None,
    "doc_md": None,
    "doc": None,
    "email": None,
    # As in Airflow: once a task names an ``email``, failures and retries are mailed unless turned off.
    "email_on_failure": True,
    "email_on_retry": True,
    "map_index_template": None,
    "max_active_tis_per_dag": None,
    "max_active_tis_per_dagrun": None,
    "task_display_name": None,
}


def _as_timedelta(name: str, value: Any, task_id: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise DagDefinitionError(f"task {task_id!r}: {name} must be a timedelta or seconds, not {value!r}")


def _positive_or_none(name: str, value: Any, task_id: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DagDefinitionError(f"task {task_id!r}: {name} must be a positive integer or None, not {value!r}")
    return value


class Node(SetupTeardownMixin, DependencyMixin):
    """What a DAG holds: a plain operator or a mapped one. Carries identity and graph edges."""

    task_id: str
    dag: DAG | None
    task_group: TaskGroup | None
    trigger_rule: TriggerRule
    #: Roles set by ``as_setup()`` / ``as_teardown()`` (see :mod:`zonda.setup_teardown`).
    is_setup: bool = False
    is_teardown: bool = False
    #: Whether a teardown's failure fails the DAG run (a work task's always does).
    on_failure_fail_dagrun: bool = False

    def _operators(self) -> list[Node]:
        return [self]

    @property
    def mapped_group(self) -> MappedTaskGroup | None:
        """The mapped task group this task sits in (each of its instances belongs to one element), or None."""
        return self.task_group.mapped_group() if self.task_group is not None else None

    @property
    def is_mapped(self) -> bool:
        """Whether the task expands into instances ``0..n-1`` at run time (itself, or through its group)."""
        return self.mapped_group is not None

    def _init_node(self, task_id: str, dag: DAG | None, task_group: TaskGroup | None, detached: bool) -> None:
        if not isinstance(task_id, str) or not task_id or not all(c.isalnum() or c in "_-." for c in task_id):
            raise DagDefinitionError(f"invalid task_id {task_id!r}: use letters, digits, '_', '-' and '.'")
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        if detached:
            self.task_id, self.dag, self.task_group = task_id, dag, task_group
            return
        group = task_group if task_group is not None else _context_stack.current_group()
        dag = dag or (group.dag if group else None) or _context_stack.current_dag()
        self.task_group = group
        self.task_id = group.child_id(task_id) if group is not None else task_id
        self.dag = None
        if dag is not None:
            self._attach(dag)

    def _attach(self, dag: DAG) -> None:
        dag.add_task(self)
        self.dag = dag
        if self.task_group is not None:
            self.task_group.add(self)

    @property
    def roots(self) -> list[Node]:
        return [self]

    @property
    def leaves(self) -> list[Node]:
        return [self]

    def _link_downstream(self, other: Node) -> None:
        if self.dag is None and other.dag is None:
            raise DagDefinitionError(
                f"cannot link {self.task_id!r} >> {other.task_id!r}: neither task belongs to a DAG"
            )
        if self.dag is None:
            self._attach(other.dag)  # type: ignore[arg-type]
        elif other.dag is None:
            other._attach(self.dag)
        elif self.dag is not other.dag:
            raise DagDefinitionError(
                f"cannot link {self.task_id!r} ({self.dag.dag_id}) to {other.task_id!r} ({other.dag.dag_id}): "
                "tasks of different DAGs"
            )
        if other.task_id == self.task_id:
            raise DagDefinitionError(f"DAG {self.dag.dag_id!r}: task {self.task_id!r} cannot depend on itself")
        self.downstream_task_ids.add(other.task_id)
        other.upstream_task_ids.add(self.task_id)

    @property
    def upstream_list(self) -> list[Node]:
        assert self.dag is not None
        return [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list[Node]:
        assert self.dag is not None
        return [self.dag.task_dict[t] for t in sorted(self.downstream_task_ids)]

    def get_flat_relative_ids(self, upstream: bool = False) -> set[str]:
        """Every task reachable downstream (or upstream) of this one."""
        assert self.dag is not None
        found: set[str] = set()
        stack = list(self.upstream_task_ids if upstream else self.downstream_task_ids)
        while stack:
            tid = stack.pop()
            if tid in found:
                continue
            found.add(tid)
            node = self.dag.task_dict[tid]
            stack.extend(node.upstream_task_ids if upstream else node.downstream_task_ids)
        return found

    @property
    def output(self) -> XComArg:
        from zonda.xcom_arg import XComArg

        return XComArg(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id}>"


def _accepted_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments a class's ``__init__`` chain accepts (for applying ``default_args`` and for
    naming a misspelled argument). Not cached: DAG files define operator classes anew on every parse."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        init = getattr(init, "__wrapped__", init)
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and param.name != "self":
                names.add(param.name)
    return frozenset(name for name in names if not name.startswith("_zonda"))


def _required_arguments(cls: type) -> tuple[str, ...]:
    """The keyword arguments the class's own ``__init__`` cannot do without (no default)."""
    init = getattr(cls.__init__, "__wrapped__", cls.__init__)
    return tuple(
        param.name
        for param in inspect.signature(init).parameters.values()
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        and param.default is param.empty
        and param.name != "self"
    )


def argument_error(cls: type, task_id: Any, given: Iterable[str], missing: Iterable[str] = ()) -> str:
    """One line naming the arguments ``cls`` does not take, the likely intended ones, and what is missing:
    ``BashOperator 'x' got an unexpected argument 'bash_comand'; did you mean 'bash_command'? (and
    'bash_command' is required)``. Valid names come from every ``__init__`` along the class's MRO."""
    from zonda.suggestions import close_matches, suggest

    accepted = _accepted_arguments(cls)
    unknown = sorted(name for name in given if name not in accepted and not name.startswith("_zonda"))
    missing = [name for name in missing if name not in given]
    guesses = {name: close_matches(name, accepted, limit=1) for name in unknown}
    if len(unknown) == 1:
        (name,) = unknown
        text = f"got an unexpected argument {name!r}"
        text += f"; {suggest(guesses[name])}" if guesses[name] else ""
    elif unknown:
        listed = [f"{n!r}" + (f" ({suggest(guesses[n])})" if guesses[n] else "") for n in unknown]
        text = f"got unexpected arguments {', '.join(listed)}"
    else:
        text = ""
    guessed = {guess for found in guesses.values() for guess in found}
    required = [name for name in missing if name in guessed]
    absent = [name for name in missing if name not in guessed]
    if required:
        verb = "is" if len(required) == 1 else "are"
        text += f" (and {' and '.join(map(repr, required))} {verb} required)"
    if absent:
        needs = f"is missing its required argument{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))}"
        text = f"{text}; it {needs}" if text else needs
    if any(not found for found in guesses.values()):
        text += f"; see {cls.__name__}'s documentation for the arguments it takes"
    label = getattr(cls, "custom_operator_name", None) or cls.__name__  # "@task" rather than a private class
    return f"{label} {task_id!r} {text}" if task_id is not None else f"{label} {text}"


def _argument_problem(
    cls: type, init: Callable[..., None], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """Why calling an operator failed with a TypeError, when the cause is the arguments it was given (a typo
    or a missing required argument); None when the TypeError came from somewhere else."""
    accepted = _accepted_arguments(cls)
    unknown = [name for name in kwargs if name not in accepted and not name.startswith("_zonda")]
    try:
        inspect.signature(init).bind(None, *args, **kwargs)
        missing: list[str] = []
    except TypeError:
        missing = [] if args else [name for name in _required_arguments(cls) if name not in kwargs]
    if not unknown and not missing:
        return None
    return argument_error(cls, kwargs.get("task_id"), kwargs, missing)


class BaseOperator(Node):
    """Subclass and implement :meth:`execute`. List attribute names in ``template_fields`` to have them rendered.

    ``template_ext``: a templated string ending in one of these suffixes is read from a file next to the DAG
    file (or in ``template_searchpath``) and rendered.
    """

    template_fields: ClassVar[Sequence[str]] = ()
    template_ext: ClassVar[Sequence[str]] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {}
    ui_color: ClassVar[str] = "#ffffff"
    ui_fgcolor: ClassVar[str] = "#000000"
    #: Set by ``@task``-style operators so the UI and ``tasks list`` show the decorator's name.
    custom_operator_name: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _apply_default_args(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        task_group: TaskGroup | None = None,
        default_args: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        owner: str = TASK_DEFAULTS["owner"],
        retries: int | None = TASK_DEFAULTS["retries"],
        retry_delay: timedelta | float = TASK_DEFAULTS["retry_delay"],
        retry_exponential_backoff: bool = False,
        max_retry_delay: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        trigger_rule: str | TriggerRule = TriggerRule.ALL_SUCCESS,
        depends_on_past: bool = False,
        wait_for_downstream: bool = False,
        pool: str = "default_pool",
        pool_slots: int = 1,
        priority_weight: int = 1,
        weight_rule: str = "downstream",
        queue: str = "default",
        do_xcom_push: bool = True,
        multiple_outputs: bool = False,
        on_success_callback: Callable[..., Any] | list[Callable[..., Any]] | None = None,
        on_failure_callback: Callable[..., Any] | list[Callable[..., Any]] | None = None,
        on_retry_callback: Callable[..., Any] | list[Callable[..., Any]] | None = None,
        on_execute_callback: Callable[..., Any] | list[Callable[..., Any]] | None = None,
        on_skipped_callback: Callable[..., Any] | list[Callable[..., Any]] | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        executor_config: dict[str, Any] | None = None,
        doc_md: str | None = None,
        doc: str | None = None,
        email: str | list[str] | None = None,
        email_on_failure: bool = True,
        email_on_retry: bool = True,
        map_index_template: str | None = None,
        inlets: Any = None,
        outlets: Any = None,
        max_active_tis_per_dag: int | None = None,
        max_active_tis_per_dagrun: int | None = None,
        task_display_name: str | None = None,
        _zonda_detached: bool = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise DagDefinitionError(argument_error(type(self), task_id, unknown))
        self._init_node(task_id, dag, task_group, _zonda_detached)
        self.owner = owner
        self.retries = int(retries or 0)
        if self.retries < 0:
            raise DagDefinitionError(f"task {task_id!r}: retries must be >= 0, got {retries}")
        self.retry_delay = _as_timedelta("retry_delay", retry_delay, task_id) or timedelta(0)
        self.retry_exponential_backoff = retry_exponential_backoff
        self.max_retry_delay = _as_timedelta("max_retry_delay", max_retry_delay, task_id)
        self.execution_timeout = _as_timedelta("execution_timeout", execution_timeout, task_id)
        try:
            self.trigger_rule = TriggerRule.parse(trigger_rule)
        except ValueError as exc:
            where = f"DAG {self.dag.dag_id!r}, " if self.dag else ""
            raise DagDefinitionError(f"{where}task {self.task_id!r}: {exc}") from None
        self.depends_on_past = depends_on_past
        self.wait_for_downstream = wait_for_downstream
        self.pool = pool
        self.pool_slots = pool_slots
        self.priority_weight = priority_weight
        self.weight_rule = weight_rule
        self.queue = queue
        self.do_xcom_push = do_xcom_push
        self.multiple_outputs = multiple_outputs
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.on_retry_callback = on_retry_callback
        self.on_execute_callback = on_execute_callback
        self.on_skipped_callback = on_skipped_callback
        from zonda.timezone import coerce_datetime

        self.start_date = coerce_datetime(start_date)
        self.end_date = coerce_datetime(end_date)
        self.executor_config = dict(executor_config or {})
        self.doc_md = doc_md
        self.doc = doc
        self.email = email
        self.email_on_failure = email_on_failure
        self.email_on_retry = email_on_retry
        self.map_index_template = map_index_template
        # Airflow's lineage / asset lists: kept and shown to the task (``inlets``, ``outlets`` in the context).
        self.inlets = list(inlets) if isinstance(inlets, list | tuple) else [] if inlets is None else [inlets]
        self.outlets = list(outlets) if isinstance(outlets, list | tuple) else [] if outlets is None else [outlets]
        #: Instances of this task queued or running at once: over all runs, and within one run (Airflow's
        #: names; None: no limit). The scheduler applies them (see :mod:`zonda.scheduler.task_limits`).
        self.max_active_tis_per_dag = _positive_or_none("max_active_tis_per_dag", max_active_tis_per_dag, task_id)
        self.max_active_tis_per_dagrun = _positive_or_none(
            "max_active_tis_per_dagrun", max_active_tis_per_dagrun, task_id
        )
        #: A mapped instance's own arguments (set when a mapped task is unmapped for one map index).
        self.map_arguments: dict[str, Any] = {}
        if task_display_name is not None and not isinstance(task_display_name, str):
            raise DagDefinitionError(f"task {task_id!r}: task_display_name must be a string, not {task_display_name!r}")
        #: The name shown in the UI, the API and the CLI (None: the task id).
        self.task_display_name = task_display_name
        from zonda.params import ParamsDict

        self.params = ParamsDict(params)

    # --- the work ---------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Do the work. The return value becomes the ``return_value`` XCom (unless ``do_xcom_push=False``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(context)")

    def on_kill(self) -> None:
        """Called when the task is stopped (timeout, kill): release processes and connections here."""

    def pre_execute(self, context: Context) -> None:
        """Runs just before :meth:`execute`."""

    def post_execute(self, context: Context, result: Any = None) -> None:
        """Runs just after a successful :meth:`execute`."""

    def defer(
        self,
        *,
        trigger: Any,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | float | None = None,
    ) -> NoReturn:
        """Free the worker until ``trigger`` fires, then resume in the same try with
        ``getattr(self, method_name)(context, event=payload, **kwargs)``. ``timeout`` bounds the wait."""
        from zonda.exceptions import TaskDeferred

        raise TaskDeferred(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    @property
    def operator_name(self) -> str:
        return self.custom_operator_name or type(self).__name__

    @property
    def log(self) -> logging.Logger:
        """The task logger; the runner routes it to the attempt's log file while the task runs."""
        return logging.getLogger("zonda.task")

    # --- mapping ----------------------------------------------------------------------------------------

    def expansion(self, resolve: Callable[[Any], Any]) -> list[dict[str, Any]]:
        """For a task in a mapped task group: the group's arguments of each map index."""
        group = self.mapped_group
        if group is None:
            raise DagDefinitionError(f"task {self.task_id!r} is not mapped")
        return group.expansion(resolve)

    def unmap(self, arguments: Mapping[str, Any]) -> BaseOperator:
        """For a task in a mapped task group: a copy for one map index, the group's ``arguments`` in place of
        its parameters (see :class:`~zonda.taskgroup.MappedArgument`)."""
        return bind_group_arguments(self, arguments)

    @classmethod
    def partial(cls, *, task_id: str, **kwargs: Any) -> OperatorPartial:
        """Fix the arguments shared by every mapped instance; follow with ``.expand(...)``."""
        return OperatorPartial(cls, {"task_id": task_id, **kwargs})


def _apply_default_args(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap an operator ``__init__`` so ``default_args`` (DAG's, group's, explicit) fill missing arguments."""

    @functools.wraps(init)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_zonda_defaults_applied", False) or kwargs.get("_zonda_detached"):
            init(self, *args, **kwargs)
            return
        self._zonda_defaults_applied = True
        merged = collect_default_args(kwargs.get("dag"), kwargs.get("task_group"), kwargs.pop("default_args", None))
        if merged:
            accepted = _accepted_arguments(type(self))
            for key, value in merged.items():
                if key in accepted and key not in kwargs:
                    kwargs[key] = value
            if "params" in merged and isinstance(merged["params"], Mapping):
                kwargs["params"] = {**merged["params"], **(kwargs.get("params") or {})}
        try:
            init(self, *args, **kwargs)
        except TypeError:
            # Python's own message ("missing 1 required keyword-only argument") hides a typo in another one.
            problem = _argument_problem(type(self), init, args, kwargs)
            if problem is None:
                raise
            raise DagDefinitionError(problem) from None
        _depend_on_xcom_args(self)

    return wrapper


def _depend_on_xcom_args(operator: BaseOperator) -> None:
    """An XComArg used as an argument makes its task upstream of this one, as in Airflow."""
    from zonda.xcom_arg import find_xcom_args

    fields = [getattr(operator, name, None) for name in operator.template_fields]
    for arg in find_xcom_args(fields):
        arg.operator.set_downstream(operator)


def collect_default_args(
    dag: DAG | None, group: TaskGroup | None, explicit: Mapping[str, Any] | None
) -> dict[str, Any]:
    group = group if group is not None else _context_stack.current_group()
    dag = dag or (group.dag if group is not None else None) or _context_stack.current_dag()
    merged: dict[str, Any] = {}
    if dag is not None:
        merged.update(dag.default_args)
    if group is not None:
        merged.update(group.effective_default_args())
    if explicit:
        merged.update(explicit)
    return merged


BaseOperator.__init__ = _apply_default_args(BaseOperator.__init__)  # type: ignore[method-assign]


# --- dynamic task mapping ---------------------------------------------------------------------------------


class OperatorPartial:
    """The result of ``Operator.partial(...)``: waiting for ``.expand(...)`` or ``.expand_kwargs(...)``."""

    def __init__(self, operator_class: type[BaseOperator], kwargs: dict[str, Any], mapped_into: str | None = None):
        self.operator_class = operator_class
        self.kwargs = kwargs
        #: For decorated tasks, mapped values are function arguments, collected into this operator argument.
        self.mapped_into = mapped_into

    def expand(self, **mapped: Any) -> MappedOperator:
        if not mapped:
            raise DagDefinitionError(f"task {self.kwargs['task_id']!r}: expand() needs at least one argument")
        for key, value in mapped.items():
            if key in self.kwargs:
                raise DagDefinitionError(
                    f"task {self.kwargs['task_id']!r}: {key!r} is given to both partial() and expand()"
                )
            check_mappable(self.kwargs["task_id"], key, value)
        return MappedOperator(self, expand_input=mapped, expand_kwargs_input=None)

    def expand_kwargs(self, value: Any) -> MappedOperator:
        check_mappable(self.kwargs["task_id"], "expand_kwargs", value)
        return MappedOperator(self, expand_input=None, expand_kwargs_input=value)


def _check_mapped_arguments(
    partial: OperatorPartial, expand_input: Mapping[str, Any] | None, expand_kwargs: Any
) -> None:
    """``partial()`` and ``expand()`` arguments are checked against the operator's when the DAG file is parsed,
    as a plain operator's are (not when the first mapped instance runs)."""
    cls = partial.operator_class
    names = set(partial.kwargs) - {"dag", "task_group", "default_args"}
    if partial.mapped_into is None:
        names |= set(expand_input or {})
    missing: list[str] = []
    if expand_kwargs is None:  # with expand_kwargs() the mapped names are known only at run time
        missing = [name for name in _required_arguments(cls) if name not in names]
    if missing or not names <= _accepted_arguments(cls):
        raise DagDefinitionError(argument_error(cls, partial.kwargs.get("task_id"), names, missing))


def _is_reference(value: Any) -> bool:
    from zonda.xcom_arg import DagParamArg, XComArg

    return isinstance(value, XComArg | DagParamArg)


def _keep_data_unrendered(
    operator: BaseOperator, marked: Mapping[str, Any], plain: Mapping[str, Any], mapped_into: str | None
) -> None:
    """Put the data-carrying mapped values (``marked``) back into ``operator``'s templated fields."""
    from zonda.xcom_arg import ResolvedValue

    fields = set(operator.template_fields)
    for key, value in marked.items():
        original = plain[key]
        if value is original:  # a literal from the DAG file: rendered as usual
            continue
        if mapped_into is not None:
            container = getattr(operator, mapped_into, None)
            if mapped_into in fields and isinstance(container, dict) and key in container:
                container[key] = value if container[key] is original else ResolvedValue(container[key])
        elif key in fields:
            current = getattr(operator, key, None)
            setattr(operator, key, value if current is original else ResolvedValue(current))
        else:  # an argument stored under another name: follow it by identity
            for name in fields:
                if getattr(operator, name, None) is original:
                    setattr(operator, name, value)


def check_mappable(task_id: str, key: str, value: Any) -> None:
    from zonda.xcom_arg import XComArg

    if isinstance(value, XComArg):
        return
    if isinstance(value, str | bytes) or not isinstance(value, Iterable | Mapping):
        raise DagDefinitionError(
            f"task {task_id!r}: expand() argument {key!r} must be a list, a dict or an upstream task's output, "
            f"not {type(value).__name__}"
        )


class MappedOperator(Node):
    """A task expanded at run time into one instance per element (``map_index`` 0..n-1)."""

    @property
    def is_mapped(self) -> bool:
        return True

    def __init__(
        self, partial: OperatorPartial, *, expand_input: dict[str, Any] | None, expand_kwargs_input: Any
    ) -> None:
        _check_mapped_arguments(partial, expand_input, expand_kwargs_input)
        kwargs = dict(partial.kwargs)
        self.operator_class = partial.operator_class
        self.mapped_into = partial.mapped_into
        self.expand_input = expand_input
        self.expand_kwargs_input = expand_kwargs_input
        merged = collect_default_args(kwargs.get("dag"), kwargs.get("task_group"), kwargs.pop("default_args", None))
        accepted = _accepted_arguments(self.operator_class)
        for key, value in merged.items():
            if key in accepted and key not in kwargs:
                kwargs[key] = value
        self._init_node(kwargs.pop("task_id"), kwargs.pop("dag", None), kwargs.pop("task_group", None), False)
        if self.mapped_group is not None:
            raise DagDefinitionError(
                f"task {self.task_id!r}: expanding a task inside a mapped task group is not supported (nor in "
                "Airflow 3.3); map the group over the combined inputs, or move the task out of the group"
            )
        self.partial_kwargs = kwargs
        settings = {**TASK_DEFAULTS, **{k: v for k, v in kwargs.items() if k in TASK_DEFAULTS}}
        try:
            self.trigger_rule = TriggerRule.parse(settings.pop("trigger_rule"))
        except ValueError as exc:
            raise DagDefinitionError(f"task {self.task_id!r}: {exc}") from None
        for key, value in settings.items():
            setattr(self, key, value)
        self.retry_delay = _as_timedelta("retry_delay", self.retry_delay, self.task_id)
        self.max_retry_delay = _as_timedelta("max_retry_delay", self.max_retry_delay, self.task_id)
        self.execution_timeout = _as_timedelta("execution_timeout", self.execution_timeout, self.task_id)
        self.retries = int(self.retries or 0)
        self.template_fields = self.operator_class.template_fields
        self.ui_color = self.operator_class.ui_color
        from zonda.params import ParamsDict

        self.params = ParamsDict(kwargs.get("params"))
        for arg in self.iter_xcom_args():
            arg.operator.set_downstream(self)

    @property
    def operator_name(self) -> str:
        return self.operator_class.custom_operator_name or self.operator_class.__name__

    def iter_xcom_args(self) -> list[XComArg]:
        from zonda.xcom_arg import find_xcom_args

        sources = [self.partial_kwargs, self.expand_input or {}, self.expand_kwargs_input]
        return find_xcom_args(sources)

    def expansion(self, resolve: Callable[[Any], Any]) -> list[dict[str, Any]]:
        """The kwargs of each mapped instance, in map-index order (see :func:`expand_arguments`)."""
        return expand_arguments(self.task_id, self.expand_input, self.expand_kwargs_input, resolve)

    def unmap(self, map_kwargs: Mapping[str, Any]) -> BaseOperator:
        """A plain operator for one mapped instance (not added to the DAG; same task id and edges).

        The operator is built with plain values; then each value that came from data (see :meth:`expansion`)
        goes back into its templated field wrapped, so rendering passes it by and the task runner unwraps it
        afterwards. An operator that changed such an argument in ``__init__`` gets the changed value wrapped
        whole: what was derived from data is data too.
        """
        from zonda.xcom_arg import has_references, resolve_references

        plain = {
            key: resolve_references(value, {}) if has_references(value) else value for key, value in map_kwargs.items()
        }
        kwargs = dict(self.partial_kwargs)
        if self.mapped_into:
            target = dict(kwargs.get(self.mapped_into) or {})
            target.update(plain)
            kwargs[self.mapped_into] = target
        else:
            kwargs.update(plain)
        operator = self.operator_class(
            task_id=self.task_id, dag=self.dag, task_group=self.task_group, _zonda_detached=True, **kwargs
        )
        _keep_data_unrendered(operator, map_kwargs, plain, self.mapped_into)
        #: The instance's mapped arguments, as values: what its ``map_index_template`` may show.
        operator.map_arguments = plain
        operator.upstream_task_ids = self.upstream_task_ids
        operator.downstream_task_ids = self.downstream_task_ids
        return operator


def expand_arguments(
    owner_id: str, expand_input: Mapping[str, Any] | None, expand_kwargs_input: Any, resolve: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """The arguments of each mapped instance, in map-index order, for a mapped task or task group
    (``owner_id``). ``resolve`` turns an XComArg or a DagParamArg into its value.

    Values that come from a reference (an upstream task's output, a param) are wrapped in
    :class:`~zonda.xcom_arg.ResolvedValue`, so they are never rendered as templates; values written in the DAG
    file (literal lists and dicts) stay as written and are rendered, as in Airflow.
    """
    from zonda.xcom_arg import ResolvedValue, mark_resolved

    if expand_kwargs_input is not None:
        source = expand_kwargs_input
        if _is_reference(source):
            items: list[tuple[Any, bool]] = [(item, True) for item in resolve(source) or []]
        else:
            items = [(resolve(item), True) if _is_reference(item) else (item, False) for item in source]
        result = []
        for index, (item, from_data) in enumerate(items):
            if not isinstance(item, Mapping):
                raise DagDefinitionError(
                    f"task {owner_id!r}: expand_kwargs() element {index} must be a dict, got {item!r}"
                )
            if from_data:
                result.append({key: ResolvedValue(value) for key, value in item.items()})
            else:
                result.append({key: mark_resolved(value, resolve) for key, value in item.items()})
        return result
    assert expand_input is not None
    keys = list(expand_input)
    columns = []
    for key in keys:
        value = expand_input[key]
        if _is_reference(value):
            value = resolve(value)
            if value is None:
                value = []
            if isinstance(value, Mapping):
                value = list(value.items())
            columns.append([ResolvedValue(element) for element in value])
        else:
            if isinstance(value, Mapping):
                value = list(value.items())
            columns.append([mark_resolved(element, resolve) for element in value])
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*columns)]


def bind_group_arguments(operator: BaseOperator, arguments: Mapping[str, Any]) -> BaseOperator:
    """A shallow copy of ``operator`` (a task of a mapped task group) for one map index: each
    :class:`~zonda.taskgroup.MappedArgument` in its attributes replaced by that index's value. In a templated
    field a value from data stays wrapped (never rendered; the runner unwraps it after rendering) and a literal
    is rendered as usual; elsewhere the plain value goes in."""
    import copy

    from zonda.xcom_arg import resolve_references

    bound = copy.copy(operator)
    bound.map_arguments = resolve_references(dict(arguments), {})
    fields = set(operator.template_fields)
    for name, value in list(vars(operator).items()):
        if not _has_mapped_argument(value):
            continue
        replaced = _substitute_mapped(value, arguments)
        setattr(bound, name, replaced if name in fields else resolve_references(replaced, {}))
    return bound


def _has_mapped_argument(value: Any) -> bool:
    from zonda.taskgroup import MappedArgument
    from zonda.xcom_arg import contains_instance

    return contains_instance(value, MappedArgument)


def _substitute_mapped(value: Any, arguments: Mapping[str, Any]) -> Any:
    from zonda.taskgroup import MappedArgument

    if isinstance(value, MappedArgument):
        return value.pick(dict(arguments))
    if isinstance(value, dict):
        return {k: _substitute_mapped(v, arguments) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_mapped(v, arguments) for v in value]
    if isinstance(value, tuple):
        items = [_substitute_mapped(v, arguments) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value
