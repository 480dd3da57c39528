"""The task context: what ``execute(context)`` receives and what templates see.

The keys are Airflow 3's (its templates reference, "Variables"): ``ds``, ``ds_nodash``, ``ts``, ``ts_nodash``,
``ts_nodash_with_tz``, ``logical_date`` (also ``execution_date``, its Airflow 2 name), ``data_interval_start``,
``data_interval_end``, ``run_id``, ``dag``, ``dag_run``, ``task``, ``ti`` and ``task_instance`` (the same
object), ``task_instance_key_str``, ``try_number``, ``params``, ``conf`` (the :class:`~zonda.config.Settings`),
``macros``, ``test_mode``, ``var`` (``var.value.key``, ``var.json.key``), ``conn`` (``conn.my_conn.host``),
``inlets``, ``outlets``, ``inlet_events``, ``outlet_events``, ``triggering_asset_events``,
``map_index_template``, ``expanded_ti_count``, ``task_reschedule_count``, ``partition_key``,
``partition_date``, and the previous successful run's ``prev_data_interval_start_success``,
``prev_data_interval_end_success``, ``prev_start_date_success`` and ``prev_end_date_success``. Only some
contexts have ``templates_dict`` (PythonOperator), ``exception`` (failure callbacks) and ``reason`` (DAG
callbacks), as in Airflow.

Building a context is cheap on purpose (it happens once per task instance): no copies of params or conf, the
macros namespace is built once unless the caller passes one in (a plugin manager does, to add macros), and
the values that need a query (the ``prev_*_success`` dates, ``expanded_ti_count``, ``task_reschedule_count``)
are computed when first read, then kept. Copying the whole context (``dict(context)``, a callable taking
``**kwargs``, a template render) reads them all: at most three small indexed queries per task instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zonda.macros import Macros, default_macros

if TYPE_CHECKING:
    from zonda.config import Settings

__all__ = ["CONTEXT_KEYS", "Context", "build_context"]

CONTEXT_KEYS = (
    "conf",
    "conn",
    "dag",
    "dag_run",
    "data_interval_end",
    "data_interval_start",
    "ds",
    "ds_nodash",
    "execution_date",
    "expanded_ti_count",
    "inlet_events",
    "inlets",
    "logical_date",
    "macros",
    "map_index_template",
    "outlet_events",
    "outlets",
    "params",
    "partition_date",
    "partition_key",
    "prev_data_interval_end_success",
    "prev_data_interval_start_success",
    "prev_end_date_success",
    "prev_start_date_success",
    "run_id",
    "task",
    "task_instance",
    "task_instance_key_str",
    "task_reschedule_count",
    "test_mode",
    "ti",
    "triggering_asset_events",
    "try_number",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "var",
)


class Lazy:
    """A context value computed on first read (a query), then stored in its place."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


class Context(dict[str, Any]):
    """A plain dict of the keys above; a missing key raises a ``KeyError`` that lists the known ones.

    Lazy values resolve on every way of reading (``[]``, ``get``, ``items``, ``values``, ``dict(context)``,
    ``**context``): ``__iter__`` is overridden so CPython copies this dict key by key through ``__getitem__``
    instead of copying its raw slots.
    """

    __slots__ = ()

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"{key!r} is not in the task context; it has: {', '.join(sorted(self))}")

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, Lazy):
            value = value.compute()
            super().__setitem__(key, value)
        return value

    def __iter__(self) -> Iterator[str]:
        return super().__iter__()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key in self else default  # noqa: SIM401 -- self.get is this method

    def items(self) -> Any:  # type: ignore[override]
        return [(key, self[key]) for key in list(self.keys())]

    def values(self) -> Any:  # type: ignore[override]
        return [self[key] for key in list(self.keys())]

    def copy(self) -> Context:
        """A shallow copy whose lazy values are still unread (each copy reads its own on first use)."""
        return Context(super().items())


def _previous_success(dag_run: Any, ti: Any) -> Any:
    """The DAG's latest successful run before this one (Airflow's ``get_previous_dagrun_success``)."""
    store = getattr(ti, "store", None)
    finder = getattr(store, "previous_successful_run", None)
    return finder(dag_run) if finder is not None else None


def _previous_success_field(holder: dict[str, Any], dag_run: Any, ti: Any, name: str) -> Lazy:
    """One ``prev_*_success`` value; the four share one query through ``holder``."""

    def compute() -> Any:
        if "run" not in holder:
            holder["run"] = _previous_success(dag_run, ti)
        return getattr(holder["run"], name, None)

    return Lazy(compute)


def _expanded_ti_count(ti: Any) -> Any:
    store = getattr(ti, "store", None)
    if getattr(ti, "map_index", -1) < 0 or store is None or not hasattr(store, "mapped_instance_count"):
        return None
    return store.mapped_instance_count(ti.dag_run, ti.task_id)


def _reschedule_count(ti: Any) -> int:
    store = getattr(ti, "store", None)
    if store is None or not hasattr(store, "reschedule_count"):
        return 0
    return store.reschedule_count(ti.dag_run, ti.task_id, ti.map_index, ti.try_number)


def build_context(
    *,
    dag: Any,
    task: Any,
    dag_run: Any,
    ti: Any,
    params: Mapping[str, Any] | None,
    settings: Settings | None = None,
    extra: Mapping[str, Any] | None = None,
    macros: Macros | Any | None = None,
    test_mode: bool = False,
    plugins: Any = None,
) -> Context:
    """The context of one task instance.

    ``dag_run`` is anything with ``run_id``, ``logical_date``, ``data_interval_start``, ``data_interval_end``
    and ``conf``. A run without a logical date (a manual run in Airflow 3 terms) dates its templates by the
    start of its data interval, or now. ``extra`` keys are added last and win, so an executor or a test can
    add or override anything. ``plugins`` (the run's plugin manager) gives ``var`` and ``conn`` its secrets
    backends. ``ti.store`` (a run store) answers the queries of the lazy values; without one they are None.
    """
    from zonda.context_accessors import ConnectionAccessor, InletEventsAccessor, OutletEventsAccessor
    from zonda.variable import VariableAccessor

    logical_date = getattr(dag_run, "logical_date", None)
    start = getattr(dag_run, "data_interval_start", None)
    end = getattr(dag_run, "data_interval_end", None)
    if logical_date is None:
        logical_date = start if start is not None else datetime.now(UTC)
    if start is None:
        start = logical_date
    if end is None:
        end = start
    ds = logical_date.strftime("%Y-%m-%d")
    ds_nodash = ds.replace("-", "")
    ts = logical_date.isoformat()
    inlets = list(getattr(task, "inlets", None) or [])
    previous: dict[str, Any] = {}
    context = Context(
        conf=settings,
        conn=ConnectionAccessor(settings, plugins),
        dag=dag,
        dag_run=dag_run,
        data_interval_end=end,
        data_interval_start=start,
        ds=ds,
        ds_nodash=ds_nodash,
        execution_date=logical_date,
        expanded_ti_count=Lazy(lambda: _expanded_ti_count(ti)),
        inlet_events=InletEventsAccessor(inlets),
        inlets=inlets,
        logical_date=logical_date,
        macros=default_macros() if macros is None else macros,
        map_index_template=getattr(task, "map_index_template", None),
        outlet_events=OutletEventsAccessor(),
        outlets=list(getattr(task, "outlets", None) or []),
        params={} if params is None else params,
        partition_date=None,
        partition_key=None,
        prev_data_interval_end_success=_previous_success_field(previous, dag_run, ti, "data_interval_end"),
        prev_data_interval_start_success=_previous_success_field(previous, dag_run, ti, "data_interval_start"),
        prev_end_date_success=_previous_success_field(previous, dag_run, ti, "end_date"),
        prev_start_date_success=_previous_success_field(previous, dag_run, ti, "start_date"),
        run_id=getattr(dag_run, "run_id", None),
        task=task,
        task_instance=ti,
        task_instance_key_str=f"{getattr(dag, 'dag_id', None) or getattr(dag_run, 'dag_id', None)}__"
        f"{getattr(task, 'task_id', None)}__{ds_nodash}",
        task_reschedule_count=Lazy(lambda: _reschedule_count(ti)),
        test_mode=test_mode,
        ti=ti,
        triggering_asset_events={},
        try_number=getattr(ti, "try_number", None),
        ts=ts,
        ts_nodash=logical_date.strftime("%Y%m%dT%H%M%S"),
        ts_nodash_with_tz=ts.replace("-", "").replace(":", ""),
        var=VariableAccessor(settings, plugins),
    )
    if extra:
        context.update(extra)
    return context
