"""Where each Airflow name lives in Zonda: the codemod's table.

Airflow names are looked up by the name imported, whatever Airflow module it came from (``airflow.sdk``,
``airflow.decorators``, ``airflow.models.dag``, ``airflow.operators.bash``, ``airflow.providers.standard...``),
because Airflow moved its names between versions and Zonda keeps one home per name. A target that the installed
Zonda does not have (yet) is reported instead of written, so a ported file never imports a name that is missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Target:
    module: str
    name: str


def _same(module: str, *names: str) -> dict[str, Target]:
    return {name: Target(module, name) for name in names}


#: Airflow name -> its Zonda home (and new name where Zonda spells it differently).
NAMES: dict[str, Target] = {
    **_same("zonda", "DAG", "dag", "task", "task_group", "TaskGroup", "Param", "Variable", "chain", "XComArg"),
    **_same("zonda", "get_current_context", "Label", "chain_linear", "cross_downstream", "setup", "teardown"),
    **_same(
        "zonda.operators",
        "BaseOperator",
        "BaseBranchOperator",
        "BashOperator",
        "PythonOperator",
        "BranchPythonOperator",
        "ShortCircuitOperator",
        "EmptyOperator",
        "LatestOnlyOperator",
        "BranchDayOfWeekOperator",
        "BranchDateTimeOperator",
        "TriggerDagRunOperator",
        "PythonVirtualenvOperator",
        "ExternalPythonOperator",
    ),
    "DummyOperator": Target("zonda.operators", "EmptyOperator"),
    "BaseSensorOperator": Target("zonda.sensors", "BaseSensor"),
    **_same(
        "zonda.sensors",
        "PokeReturnValue",
        "PythonSensor",
        "FileSensor",
        "TimeDeltaSensor",
        "TimeDeltaSensorAsync",
        "DateTimeSensor",
        "TimeSensor",
        "BashSensor",
        "ExternalTaskSensor",
    ),
    "BaseHook": Target("zonda.hooks", "BaseHook"),
    "Context": Target("zonda.context", "Context"),
    **_same(
        "zonda.timetables",
        "CronTriggerTimetable",
        "MultipleCronTriggerTimetable",
        "DeltaTriggerTimetable",
        "EventsTimetable",
    ),
    "Connection": Target("zonda.connection", "Connection"),
    "TriggerRule": Target("zonda.trigger_rule", "TriggerRule"),
    "AirflowException": Target("zonda.exceptions", "ZondaException"),
    "AirflowSkipException": Target("zonda.exceptions", "ZondaSkipException"),
    "AirflowFailException": Target("zonda.exceptions", "ZondaFailException"),
    "AirflowSensorTimeout": Target("zonda.exceptions", "ZondaSensorTimeout"),
    "AirflowTaskTimeout": Target("zonda.exceptions", "ZondaTaskTimeout"),
    "AirflowTaskTerminated": Target("zonda.exceptions", "ZondaTaskTerminated"),
    "TaskDeferred": Target("zonda.exceptions", "TaskDeferred"),
    **_same("zonda.notifications", "BaseNotifier", "SmtpNotifier"),
    **_same("zonda.deadlines", "DeadlineAlert", "DeadlineReference", "SyncCallback", "AsyncCallback"),
    **_same("zonda.timezone", "utcnow"),
    **_same("zonda_postgres.hooks", "PostgresHook"),
    **_same("zonda_postgres.operators", "SQLExecuteQueryOperator"),
    **_same("zonda_postgres.sensors", "SqlSensor"),
    **_same("zonda_http.hooks", "HttpHook"),
    **_same("zonda_http.operators", "HttpOperator"),
    "SimpleHttpOperator": Target("zonda_http.operators", "HttpOperator"),
    **_same("zonda_http.sensors", "HttpSensor"),
    **_same("zonda_http.notifications", "HttpWebhookNotifier"),
    **_same("zonda_elasticsearch.hooks", "ElasticsearchHook"),
    "ElasticsearchSQLHook": Target("zonda_elasticsearch.hooks", "ElasticsearchHook"),
    "ElasticsearchPythonHook": Target("zonda_elasticsearch.hooks", "ElasticsearchHook"),
}

#: Airflow modules imported whole (``from airflow.sdk import timezone``) -> the Zonda module of that name.
#: (Not ``timezone``: Airflow's has ``datetime()``, ``parse()``... which Zonda's does not, so it is reported.)
MODULES: dict[str, str] = {"macros": "zonda.macros"}

#: Why some names are not ported: the feature Zonda has no counterpart for.
NO_COUNTERPART: dict[str, str] = {
    name: "assets (data-aware scheduling) have no Zonda counterpart yet"
    for name in ("Asset", "AssetAlias", "AssetAll", "AssetAny", "AssetWatcher", "Dataset", "asset", "Metadata")
} | {
    "ObjectStoragePath": "object storage paths have no Zonda counterpart",
    "KubernetesPodOperator": "Kubernetes has no Zonda provider",
}


@cache
def available(target: Target) -> bool:
    """Whether the installed Zonda (and its providers) has ``target``; imports its module once to know."""
    try:
        module = importlib.import_module(target.module)
    except ImportError:
        return False
    if hasattr(module, target.name):
        return True
    try:  # a submodule (``from zonda import timezone``)
        importlib.import_module(f"{target.module}.{target.name}")
    except ImportError:
        return False
    return True


def find(name: str) -> Target | None:
    """The Zonda home of Airflow's ``name`` when the installed Zonda has it."""
    target = NAMES.get(name)
    if target is None and name in MODULES:
        parent, _, child = MODULES[name].rpartition(".")
        target = Target(parent, child)
    return target if target is not None and available(target) else None


def why_not(module: str, name: str) -> str:
    """The one-line reason ``from module import name`` cannot be ported."""
    if name in NO_COUNTERPART:
        return f"{module}.{name}: {NO_COUNTERPART[name]}"
    if name in NAMES:
        target = NAMES[name]
        return (
            f"{module}.{name}: this Zonda has no {target.module}.{target.name} (install the provider or a newer Zonda)"
        )
    return f"{module}.{name}: no Zonda counterpart known; port this by hand"
