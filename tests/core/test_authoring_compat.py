"""Authoring features Airflow DAGs use, each checked against what Airflow 3.3 does: ``async def`` callables,
``@task.branch`` returning lists / task group ids / mapped tasks, edge ``Label``s, ``chain_linear`` and
``cross_downstream``, ``map_index_template`` and display names.

Expected states marked "Airflow 3.3.2" were recorded with ``airflow dags test`` on the same DAG (imports from
``airflow.sdk``); the others follow Airflow's documentation, quoted where it matters.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h

from zonda import DAG, Label, TaskGroup, chain_linear, cross_downstream, task, task_group
from zonda.operators import EmptyOperator, PythonOperator
from zonda.testing import run_dag

START = datetime(2024, 1, 1)


# --- async callables ----------------------------------------------------------------------------------------------


async def _double_later(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 2


def test_async_callables_run_in_an_event_loop_and_their_result_is_the_xcom() -> None:
    with DAG("async_callables", schedule=None, start_date=START) as dag:
        classic = PythonOperator(task_id="classic", python_callable=_double_later, op_args=[21])

        @task
        async def decorated(value: int, ti=None) -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"value": value, "task": ti.task_id}

        decorated(classic.output)
    result = run_dag(dag)
    assert result.states() == {"classic": "success", "decorated": "success"}
    assert result.ti("decorated").xcom_pull(task_ids=["classic", "decorated"]) == [
        42,
        {"value": 42, "task": "decorated"},
    ]


def test_an_async_callable_that_raises_fails_its_task() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("async boom")

    with DAG("async_failure", schedule=None, start_date=START) as dag:
        PythonOperator(task_id="broken", python_callable=broken)
    result = run_dag(dag)
    assert result.states() == {"broken": "failed"}
    assert "async boom" in (result.ti("broken").error or "")


# --- branching ------------------------------------------------------------------------------------------------------

BRANCH_DAG = """
from datetime import datetime

from zonda import DAG, TaskGroup, task, task_group
from zonda.operators import EmptyOperator


@task
def work(x):
    return x


with DAG("br", schedule=None, start_date=datetime(2024, 1, 1)):

    @task.branch
    def pick_list():
        return ["a", "grp1", "mapped_follow"]

    chooser = pick_list()
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    with TaskGroup("grp1") as grp1:
        EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
    with TaskGroup("grp2") as grp2:
        EmptyOperator(task_id="only")
    mapped_follow = work.override(task_id="mapped_follow").expand(x=[1, 2])
    mapped_skip = work.override(task_id="mapped_skip").expand(x=[1, 2])

    @task_group
    def lanes(x):
        return work(x)

    lanes_out = lanes.expand(x=[1, 2, 3])
    chooser >> [a, b, grp1, grp2, mapped_follow, mapped_skip]
    chooser >> lanes_out
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    [a, b, grp1, grp2, mapped_follow, mapped_skip, lanes_out] >> join

    @task.branch
    def pick_group():
        return "mg"

    @task_group(group_id="mg")
    def mg(x):
        return work(x)

    other = EmptyOperator(task_id="other")
    pick_group() >> [mg.expand(x=[1, 2]), other]
"""

#: Airflow 3.3.2, ``airflow dags test br``: a list is followed whole; a group id follows the group's first
#: tasks; a mapped task (or mapped group) not chosen has each of its instances skipped.
AIRFLOW_BRANCH_STATES = {
    "a": "success",
    "b": "skipped",
    "grp1.first": "success",
    "grp1.second": "success",
    "grp2.only": "skipped",
    "join": "success",
    "lanes.work[0]": "skipped",
    "lanes.work[1]": "skipped",
    "lanes.work[2]": "skipped",
    "mapped_follow[0]": "success",
    "mapped_follow[1]": "success",
    "mapped_skip[0]": "skipped",
    "mapped_skip[1]": "skipped",
    "mg.work[0]": "success",
    "mg.work[1]": "success",
    "other": "skipped",
    "pick_group": "success",
    "pick_list": "success",
}


def test_branching_to_lists_groups_and_mapped_tasks_ends_in_airflows_states_both_ways(
    zonda_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zonda.dagbag import DagBag
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    (zonda_home / "dags").mkdir()
    settings, metastore = h.configure(zonda_home, monkeypatch, None, {("core", "load_examples"): "false"})
    try:
        path = h.write_dag(zonda_home, "branching.py", BRANCH_DAG)
        bag = DagBag(None)
        bag.process_file(path)
        assert not bag.import_errors, bag.import_errors
        assert run_dag(bag.dags["br"]).states() == AIRFLOW_BRANCH_STATES
        h.store_dags(settings, metastore)
        run_id = int(trigger_dag(metastore.engine, "br")["id"])
        scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
        h.drive(scheduler, [run_id], timeout=120)
        assert h.states_by_task(metastore.engine, run_id) == AIRFLOW_BRANCH_STATES
    finally:
        metastore.dispose()


# --- edges ------------------------------------------------------------------------------------------------------------


def test_a_label_links_both_sides_and_names_each_edge() -> None:
    with DAG("labels", schedule=None, start_date=START) as dag:
        check, ok, retry, report = (EmptyOperator(task_id=i) for i in ("check", "ok", "retry", "report"))
        check >> Label("valid") >> ok
        check >> Label("invalid") >> [retry, report]
        [ok, retry] >> Label("done") >> report
    assert check.downstream_task_ids == {"ok", "retry", "report"}
    assert report.upstream_task_ids == {"check", "ok", "retry"}
    assert dag.edge_info == {
        ("check", "ok"): {"label": "valid"},
        ("check", "retry"): {"label": "invalid"},
        ("check", "report"): {"label": "invalid"},
        ("ok", "report"): {"label": "done"},
        ("retry", "report"): {"label": "done"},
    }
    from zonda.serialization import serialize_dag

    stored = json.loads(serialize_dag(dag)[0])
    assert ["check", "ok", "valid"] in stored["edge_labels"]


def test_a_label_between_task_groups_links_their_leaves_to_their_roots() -> None:
    with DAG("label_groups", schedule=None, start_date=START) as dag:
        with TaskGroup("first") as first:
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        with TaskGroup("second") as second:
            EmptyOperator(task_id="c")
        first >> Label("then") >> second
    assert dag.edge_info == {("first.b", "second.c"): {"label": "then"}}
    assert run_dag(dag).succeeded


def test_chain_linear_links_each_element_to_every_task_of_the_next() -> None:
    """Airflow's docs: ``chain_linear(t0, [t1, t2], [t3, t4])`` makes t1 and t2 each upstream of t3 and t4."""
    with DAG("linear", schedule=None, start_date=START) as dag:
        t = [EmptyOperator(task_id=f"t{i}") for i in range(6)]
        chain_linear(t[0], [t[1], t[2]], [t[3], t[4]], t[5])
    edges = sorted((up, down.task_id) for down in dag.tasks for up in down.upstream_task_ids)
    assert edges == [
        ("t0", "t1"),
        ("t0", "t2"),
        ("t1", "t3"),
        ("t1", "t4"),
        ("t2", "t3"),
        ("t2", "t4"),
        ("t3", "t5"),
        ("t4", "t5"),
    ]
    with pytest.raises(ValueError, match="at least two"):
        chain_linear(t[0])


def test_cross_downstream_links_every_pair() -> None:
    with DAG("cross", schedule=None, start_date=START) as dag:
        ups = [EmptyOperator(task_id=f"u{i}") for i in range(2)]
        downs = [EmptyOperator(task_id=f"d{i}") for i in range(3)]
        cross_downstream(ups, downs)
    assert all(d.upstream_task_ids == {"u0", "u1"} for d in downs)
    assert run_dag(dag).succeeded


# --- readable names ---------------------------------------------------------------------------------------------------

NAMES_DAG = """
from datetime import datetime

from zonda import DAG, task
from zonda.operators import BashOperator
from zonda.runtime import get_current_context


@task
def people():
    return ["{{ 7 * 6 }}", "bob"]


@task(map_index_template="{{ who }}", task_display_name="Greet someone")
def greet(who):
    return who


@task(map_index_template="{{ label }}")
def labelled(n):
    get_current_context()["label"] = f"item {n}"


@task(map_index_template="{{ undefined_name.attribute }}")
def broken_name(n):
    return n


with DAG("names", schedule=None, start_date=datetime(2024, 1, 1), dag_display_name="Readable names"):
    greet.expand(who=people())
    labelled.expand(n=[1, 2])
    broken_name.expand(n=[1])
    BashOperator.partial(task_id="shell", map_index_template="{{ task.bash_command }}").expand(
        bash_command=["echo one", "echo two"]
    )
"""

#: A value from data shows as text (never rendered again); the context set during the try counts (Airflow
#: renders after execution) and so does ``task`` (the unmapped operator, as Airflow's docs show for classic
#: operators). Zonda also offers the instance's mapped arguments by name (``{{ who }}``), which Airflow's context
#: lacks. A template that cannot render leaves no name and the task still succeeds (Airflow fails a successful
#: task whose template raises; a name is not worth a failed task here).
EXPECTED_NAMES = {
    ("greet", 0): "{{ 7 * 6 }}",
    ("greet", 1): "bob",
    ("labelled", 0): "item 1",
    ("labelled", 1): "item 2",
    ("broken_name", 0): None,
    ("shell", 0): "echo one",
    ("shell", 1): "echo two",
}


def test_map_index_template_names_each_instance_in_dags_test_and_the_cli(home: Path, capsys: Any) -> None:
    from zonda.cli import main

    h.write_dag(home, "names.py", NAMES_DAG)
    assert main(["dags", "test", "names", "2024-01-01"]) == 0
    capsys.readouterr()
    assert main(["tasks", "states-for-dag-run", "names", "test__2024-01-01T00:00:00+00:00", "--output", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(r["task_id"], r["map_index"]): r["rendered_map_index"] for r in rows if r["map_index"] >= 0}
    assert names == EXPECTED_NAMES
    assert {r["state"] for r in rows} == {"success"}
    assert main(["tasks", "states-for-dag-run", "names", "test__2024-01-01T00:00:00+00:00"]) == 0
    table = capsys.readouterr().out
    assert "rendered_map_index" in table.splitlines()[0] and "item 2" in table
    assert main(["tasks", "list", "names", "--output", "json"]) == 0
    shown = {r["task_id"]: r["task_display_name"] for r in json.loads(capsys.readouterr().out)}
    assert shown["greet"] == "Greet someone" and shown["labelled"] == "labelled"
    assert main(["dags", "list", "--output", "json"]) == 0
    assert [r["dag_display_name"] for r in json.loads(capsys.readouterr().out)] == ["Readable names"]


def test_the_scheduler_records_the_same_names(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zonda.executors.local import SequentialExecutor
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(home, monkeypatch, None, {("core", "load_examples"): "false"})
    try:
        h.write_dag(home, "names.py", NAMES_DAG)
        h.store_dags(settings, metastore)
        run_id = int(trigger_dag(metastore.engine, "names")["id"])
        scheduler = Scheduler(settings, executor=SequentialExecutor(settings=settings), metastore=metastore)
        h.drive(scheduler, [run_id], timeout=120)
        rows = h.task_instances(metastore.engine, run_id)
    finally:
        metastore.dispose()
    assert {(r.task_id, r.map_index): r.rendered_map_index for r in rows if r.map_index >= 0} == EXPECTED_NAMES
    assert {r.task_id: r.task_display_name for r in rows}["greet"] == "Greet someone"


def test_display_names_must_be_strings() -> None:
    from zonda.exceptions import DagDefinitionError

    with pytest.raises(DagDefinitionError, match="dag_display_name must be a string"):
        DAG("bad_name", schedule=None, start_date=START, dag_display_name=42)  # type: ignore[arg-type]
    with (
        pytest.raises(DagDefinitionError, match="task_display_name must be a string"),
        DAG("bad_task_name", schedule=None, start_date=START),
    ):
        EmptyOperator(task_id="t", task_display_name=["x"])  # type: ignore[arg-type]


def test_a_group_function_called_plainly_still_builds_one_group() -> None:
    """``@task_group`` functions keep working when called (not mapped): the decorator is an object now."""

    @task
    def one() -> int:
        return 1

    @task_group(group_id="plain")
    def plain() -> Any:
        return one()

    with DAG("plain_group", schedule=None, start_date=START) as dag:
        plain()
    assert list(dag.task_groups) == ["plain"]
    assert run_dag(dag).states() == {"plain.one": "success"}
