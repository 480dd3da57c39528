"""The task context: what ``execute(context)`` receives and what templates see.

Keys, with Airflow's meaning: ``ds`` (``YYYY-MM-DD`` of the logical date), ``ds_nodash``, ``ts`` (ISO 8601),
``ts_nodash``, ``ts_nodash_with_tz``, ``logical_date`` (also ``execution_date``, its Airflow 2 name),
``data_interval_start``, ``data_interval_end``, ``run_id``, ``dag``, ``dag_run``, ``task``, ``ti`` and
``task_instance`` (the same object), ``params``, ``conf`` (the :class:`~zonda.config.Settings`), ``macros``,
``test_mode``, ``var`` (variables: ``var.value.key``, ``var.json.key``; read only when used).

Building a context is cheap on purpose (it happens once per task instance): no copies of params or conf, and
the macros namespace is built once unless the caller passes one in (a plugin manager does, to add macros).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zonda.macros import Macros, default_macros

if TYPE_CHECKING:
    from zonda.config import Settings

__all__ = ["CONTEXT_KEYS", "Context", "build_context"]

CONTEXT_KEYS = (
    "conf",
    "dag",
    "dag_run",
    "data_interval_end",
    "data_interval_start",
    "ds",
    "ds_nodash",
    "execution_date",
    "logical_date",
    "macros",
    "params",
    "run_id",
    "task",
    "task_instance",
    "test_mode",
    "ti",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "var",
)


class Context(dict[str, Any]):
    """A plain dict of the keys above; a missing key raises a ``KeyError`` that lists the known ones."""

    __slots__ = ()

    def __missing__(self, key: str) -> Any:
        raise KeyError(f"{key!r} is not in the task context; it has: {', '.join(sorted(self))}")


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
    add or override anything. ``plugins`` (the run's plugin manager) gives ``var`` its secrets backends.
    """
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
    ts = logical_date.isoformat()
    context = Context(
        conf=settings,
        dag=dag,
        dag_run=dag_run,
        data_interval_end=end,
        data_interval_start=start,
        ds=ds,
        ds_nodash=ds.replace("-", ""),
        execution_date=logical_date,
        logical_date=logical_date,
        macros=default_macros() if macros is None else macros,
        params={} if params is None else params,
        run_id=getattr(dag_run, "run_id", None),
        task=task,
        task_instance=ti,
        test_mode=test_mode,
        ti=ti,
        ts=ts,
        ts_nodash=logical_date.strftime("%Y%m%dT%H%M%S"),
        ts_nodash_with_tz=ts.replace("-", "").replace(":", ""),
        var=VariableAccessor(settings, plugins),
    )
    if extra:
        context.update(extra)
    return context
