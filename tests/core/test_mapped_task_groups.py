"""Mapped task groups (``@task_group`` with ``.expand()``, ``.partial().expand()``, ``.expand_kwargs()``): the
same DAG file run by ``dags test`` (the in-process runner) and by the scheduler ends in the task states Airflow
3.3.2 reached for it (recorded with ``airflow dags test`` on the same DAG, imports renamed).

Airflow's rules, which the expected states below show: instance ``i`` of a task in the group depends on
instance ``i`` of its upstream tasks in the group (one lane failing leaves the others running), and a task
downstream of the group receives the list of every instance's value. Airflow 3.3 refuses ``.expand()`` of a task
inside a mapped group ("operator expansion in an expanded task group is not yet supported"); so does Zonda, with
a message that says what to do instead.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

MAPPED_GROUPS_DAG = """
from datetime import datetime

from zonda import DAG, task, task_group


@task
def numbers():
    return [1, 2, 3]


@task
def double(x):
    if x == 2:
        raise ValueError("boom")
    return x * 2


@task
def plus(y, z):
    return y + z


@task(trigger_rule="all_done")
def after(y):
    return y


@task
def inner(a, b):
    return a * 10 + b


@task
def total(values):
    return sorted(values)


with DAG("mg", schedule=None, start_date=datetime(2024, 1, 1)):

    @task_group
    def grp(x, z):
        d = double(x)
        p = plus(d, z)
        after(d)
        return p

    total(grp.partial(z=100).expand(x=numbers()))

    @task_group
    def outer(a):
        @task_group
        def sub(a):
            return inner(a, 5)

        return sub(a)

    total.override(task_id="total2")(outer.expand(a=[1, 2, 3]))

    @task_group
    def grp3(a, b):
        return plus(a, b)

    total.override(task_id="total3")(grp3.expand_kwargs([{"a": 1, "b": 2}, {"a": 3, "b": 4}]))
"""

#: Airflow 3.3.2, ``airflow dags test mg`` on the DAG above (``from airflow.sdk import ...``).
AIRFLOW_MG_STATES = {
    "grp.after[0]": "success",
    "grp.after[1]": "success",
    "grp.after[2]": "success",
    "grp.double[0]": "success",
    "grp.double[1]": "failed",
    "grp.double[2]": "success",
    "grp.plus[0]": "success",
    "grp.plus[1]": "upstream_failed",
    "grp.plus[2]": "success",
    "grp3.plus[0]": "success",
    "grp3.plus[1]": "success",
    "numbers": "success",
    "outer.sub.inner[0]": "success",
    "outer.sub.inner[1]": "success",
    "outer.sub.inner[2]": "success",
    "total": "upstream_failed",
    "total2": "success",
    "total3": "success",
}
AIRFLOW_MG_XCOMS = {"total2": [15, 25, 35], "total3": [3, 7]}


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The mapped-groups DAG run once in process and once by a real scheduler (SequentialExecutor, SQLite)."""
    home = tmp_path_factory.mktemp("zonda_home")
    (home / "dags").mkdir()
    monkeypatch = pytest.MonkeyPatch()
    try:
        settings, metastore = h.configure(home, monkeypatch, None, {("core", "load_examples"): "false"})
        try:
            return _run_both(home, settings, metastore)
        finally:
            metastore.dispose()
    finally:
        monkeypatch.undo()


def _run_both(home: Path, settings: Any, metastore: Any) -> dict[str, Any]:
    from zonda.dagbag import DagBag
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler
    from zonda.testing import run_dag

    path = h.write_dag(home, "mapped_groups.py", MAPPED_GROUPS_DAG)
    bag = DagBag(None)
    bag.process_file(path)
    assert not bag.import_errors, bag.import_errors
    result = run_dag(bag.dags["mg"])
    in_process = {"states": result.states(), "xcoms": {t: result.ti(t).xcom_pull(task_ids=t) for t in AIRFLOW_MG_XCOMS}}
    h.store_dags(settings, metastore)
    run_id = int(trigger_dag(metastore.engine, "mg")["id"])
    scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
    h.drive(scheduler, [run_id], timeout=120)
    return {"in_process": in_process, "scheduler": h.states_by_task(metastore.engine, run_id), "engine": metastore}


def test_dags_test_ends_a_mapped_group_dag_in_airflows_states(both_paths: dict[str, Any]) -> None:
    assert both_paths["in_process"]["states"] == AIRFLOW_MG_STATES


def test_a_task_downstream_of_a_mapped_group_receives_every_lanes_value(both_paths: dict[str, Any]) -> None:
    assert both_paths["in_process"]["xcoms"] == AIRFLOW_MG_XCOMS


def test_the_scheduler_ends_a_mapped_group_dag_in_airflows_states(both_paths: dict[str, Any]) -> None:
    assert both_paths["scheduler"] == AIRFLOW_MG_STATES


# --- definition-time behaviour -------------------------------------------------------------------------------------


def _echo_lane() -> Any:
    """A ``@task_group`` of one task that returns its argument."""
    from zonda import task, task_group

    @task
    def echo(x):
        return x

    @task_group
    def lane(x):
        return echo(x)

    return lane


def test_a_task_group_function_has_expand_partial_and_expand_kwargs() -> None:
    """The failure seen when porting: ``AttributeError: 'function' object has no attribute 'expand'``."""
    from zonda import DAG

    lane = _echo_lane()
    with DAG("defined", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        lane.expand(x=[1, 2])
        lane.partial().expand_kwargs([{"x": 1}])
    assert sorted(dag.task_dict) == ["lane.echo", "lane__1.echo"]
    assert all(t.is_mapped for t in dag.tasks)


def test_expanding_a_task_inside_a_mapped_group_is_refused_with_what_to_do() -> None:
    from zonda import DAG, task, task_group
    from zonda.exceptions import DagDefinitionError

    @task
    def echo(x, y):
        return x

    @task_group
    def lane(x):
        return echo.partial(x=x).expand(y=[1, 2])

    refused = pytest.raises(DagDefinitionError, match="expanding a task inside a mapped task group is not supported")
    with refused, DAG("refused", schedule=None, start_date=datetime(2024, 1, 1)):
        lane.expand(x=[1, 2])


def test_expand_with_an_argument_the_group_function_does_not_take_names_its_parameters() -> None:
    from zonda import DAG
    from zonda.exceptions import DagDefinitionError

    lane = _echo_lane()
    refused = pytest.raises(DagDefinitionError, match=r"expand\(\) got 'y'.*its parameters: x")
    with refused, DAG("typo", schedule=None, start_date=datetime(2024, 1, 1)):
        lane.expand(y=[1])


def test_classic_operators_in_a_mapped_group_get_the_lane_value_and_data_is_never_rendered(zonda_home: Path) -> None:
    """A mapped value from data (an upstream output) that looks like a template reaches the command as it is;
    a literal from the DAG file is rendered, as any argument."""
    from zonda import DAG, task, task_group
    from zonda.operators import BashOperator
    from zonda.testing import run_dag

    @task
    def words():
        return ["{{ 6 * 7 }}", "plain"]

    @task_group
    def lane(word, suffix):
        return BashOperator(task_id="say", bash_command='echo "$WORD/$SUFFIX"', env={"WORD": word, "SUFFIX": suffix})

    with DAG("bash_lanes", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        lane.partial(suffix="{{ 2 + 3 }}").expand(word=words())
        lane.override(group_id="literal").partial(suffix="x").expand(word=["{{ 3 * 3 }}"])
    result = run_dag(dag)
    assert result.states() == {
        "words": "success",
        "lane.say[0]": "success",
        "lane.say[1]": "success",
        "literal.say[0]": "success",
    }
    assert result.ti("words").xcom_pull(task_ids="lane.say") == ["{{ 6 * 7 }}/5", "plain/5"]
    assert result.ti("words").xcom_pull(task_ids="literal.say") == ["9/x"]
