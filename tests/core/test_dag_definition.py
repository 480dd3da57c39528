"""Defining DAGs: every mistake is a clear error naming the DAG and the problem; the wiring algebra works."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from zonda import DAG, Param, TaskGroup, chain
from zonda.exceptions import (
    DagCycleError,
    DagDefinitionError,
    DuplicateTaskIdError,
    ParamValidationError,
)
from zonda.operators import BashOperator, EmptyOperator, PythonOperator
from zonda.schedule import NullTimetable, OnceTimetable
from zonda.timetables import CronTriggerTimetable, DeltaTriggerTimetable
from zonda.trigger_rule import TriggerRule

# --- schedules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["61 * * * *", "* * * * 8", "0 25 * * *", "not a cron"])
def test_bad_cron_string_names_dag_and_expression(bad):
    with pytest.raises(DagDefinitionError) as info:
        DAG("bad_cron", schedule=bad)
    message = str(info.value)
    assert "'bad_cron'" in message
    assert repr(bad) in message
    assert "cron" in message


def test_cron_with_wrong_number_of_fields():
    with pytest.raises(DagDefinitionError) as info:
        DAG("three_fields", schedule="* * *")
    message = str(info.value)
    assert "'three_fields'" in message
    assert "3 fields" in message
    assert "5" in message


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(DagDefinitionError) as info:
        DAG("fortnight", schedule="@fortnightly")
    message = str(info.value)
    assert "'fortnight'" in message
    assert "@fortnightly" in message
    for preset in ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly"):
        assert preset in message


@pytest.mark.parametrize(
    ("schedule", "kind"),
    [
        (None, NullTimetable),
        ("@once", OnceTimetable),
        ("@hourly", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("@daily", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("@weekly", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("@monthly", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("@yearly", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("@annually", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("@midnight", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        ("*/15 6-18 * * 1-5", CronTriggerTimetable),  # Airflow 3: a cron string is a trigger schedule
        (timedelta(hours=6), DeltaTriggerTimetable),  # Airflow 3: a timedelta is a trigger schedule too
    ],
)
def test_valid_schedules_are_accepted(schedule, kind):
    dag = DAG("ok_schedule", schedule=schedule, start_date=datetime(2024, 1, 1))
    assert isinstance(dag.timetable, kind)


def test_daily_preset_intervals(monkeypatch):
    # Airflow 3: @daily fires at midnight with an empty data interval; with create_cron_data_intervals a run
    # covers the day.
    dag = DAG("daily", schedule="@daily", start_date=datetime(2024, 1, 1))
    interval = dag.timetable.infer_data_interval(dag.start_date)
    assert interval.start == interval.end == dag.start_date
    monkeypatch.setenv("ZONDA__SCHEDULER__CREATE_CRON_DATA_INTERVALS", "true")
    dag = DAG("daily", schedule="@daily", start_date=datetime(2024, 1, 1))
    interval = dag.timetable.infer_data_interval(dag.start_date)
    assert interval.start == dag.start_date
    assert interval.end - interval.start == timedelta(days=1)


def test_non_positive_timedelta_schedule():
    with pytest.raises(DagDefinitionError, match=r"'zero'.*positive"):
        DAG("zero", schedule=timedelta(0))


def test_schedule_of_wrong_type():
    with pytest.raises(DagDefinitionError, match=r"'typed'.*schedule must be"):
        DAG("typed", schedule=42)


def test_end_before_start():
    with pytest.raises(DagDefinitionError, match=r"'backwards'.*end_date"):
        DAG("backwards", start_date=datetime(2024, 2, 1), end_date=datetime(2024, 1, 1))


@pytest.mark.parametrize("bad", ["has space", "slash/id", "", "ü" * 3, "x" * 251])
def test_invalid_dag_id(bad):
    with pytest.raises(DagDefinitionError, match="invalid dag_id"):
        DAG(bad)


# --- graph errors -------------------------------------------------------------------------------------------


def test_cycle_is_spelled_out():
    with pytest.raises(DagCycleError) as info, DAG("cyc"):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
        a >> b >> c >> a
    message = str(info.value)
    assert "'cyc'" in message
    assert "a -> b -> c -> a" in message


def test_cycle_found_inside_larger_graph():
    dag = DAG("bigger")
    start = EmptyOperator(task_id="start", dag=dag)
    x = EmptyOperator(task_id="x", dag=dag)
    y = EmptyOperator(task_id="y", dag=dag)
    end = EmptyOperator(task_id="end", dag=dag)
    start >> x >> y >> end
    y >> x
    with pytest.raises(DagCycleError, match=r"x -> y -> x"):
        dag.validate()


def test_self_dependency_is_rejected():
    with DAG("selfish"):
        a = EmptyOperator(task_id="a")
        with pytest.raises(DagDefinitionError, match=r"'selfish'.*'a' cannot depend on itself"):
            a >> a


def test_duplicate_task_id():
    with DAG("dupes"):
        EmptyOperator(task_id="same")
        with pytest.raises(DuplicateTaskIdError) as info:
            EmptyOperator(task_id="same")
    assert "'dupes'" in str(info.value)
    assert "'same'" in str(info.value)


def test_task_id_clashing_with_group_id():
    with DAG("clash"):
        TaskGroup("grp")
        with pytest.raises(DuplicateTaskIdError, match=r"'clash'.*'grp'"):
            EmptyOperator(task_id="grp")


@pytest.mark.parametrize("bad", ["has space", "semi;colon", "", "a/b", "quote'"])
def test_invalid_task_id_characters(bad):
    with DAG("ids"), pytest.raises(DagDefinitionError, match="invalid task_id"):
        EmptyOperator(task_id=bad)


def test_unknown_trigger_rule_lists_valid_rules():
    with DAG("rules"), pytest.raises(DagDefinitionError) as info:
        EmptyOperator(task_id="t", trigger_rule="all_sucess")
    message = str(info.value)
    assert "'rules'" in message
    assert "'t'" in message
    assert "all_sucess" in message
    for rule in TriggerRule:
        assert rule.value in message


def test_every_airflow_trigger_rule_is_accepted():
    with DAG("all_rules"):
        for rule in TriggerRule:
            op = EmptyOperator(task_id=f"t_{rule.value}", trigger_rule=rule.value)
            assert op.trigger_rule is rule
    # Airflow 3.3.2's TriggerRule values, as its installed package lists them.
    assert {rule.value for rule in TriggerRule} == {
        "all_done",
        "all_done_min_one_success",
        "all_done_setup_success",
        "all_failed",
        "all_skipped",
        "all_success",
        "always",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "one_done",
        "one_failed",
        "one_success",
    }


def test_none_failed_or_skipped_is_an_alias():
    with DAG("alias"):
        op = EmptyOperator(task_id="t", trigger_rule="none_failed_or_skipped")
    assert op.trigger_rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def test_unknown_operator_kwarg_is_an_error():
    with DAG("typo"), pytest.raises(DagDefinitionError) as info:
        BashOperator(task_id="t", bash_command="true", retires=3)
    message = str(info.value)
    assert "retires" in message
    assert "BashOperator" in message
    assert "'t'" in message


def test_unknown_kwarg_of_python_operator():
    with DAG("typo_py"), pytest.raises(DagDefinitionError, match="op_kwarg"):
        PythonOperator(task_id="t", python_callable=print, op_kwarg={"x": 1})


def test_negative_retries():
    with DAG("neg"), pytest.raises(DagDefinitionError, match="retries"):
        EmptyOperator(task_id="t", retries=-1)


def test_edge_to_task_of_another_dag():
    with DAG("one"):
        a = EmptyOperator(task_id="a")
    with DAG("two"):
        b = EmptyOperator(task_id="b")
    with pytest.raises(DagDefinitionError, match="different DAGs"):
        a >> b


# --- params -------------------------------------------------------------------------------------------------


def test_param_default_violating_its_type_is_a_dag_error():
    with pytest.raises(DagDefinitionError) as info:
        DAG("params_bad", params={"limit": Param("ten", type="integer")})
    message = str(info.value)
    assert "'params_bad'" in message
    assert "'limit'" in message
    assert "integer" in message


def test_param_default_violating_bounds_and_enum():
    with pytest.raises(DagDefinitionError, match=r"'limit'.*>= 1"):
        DAG("p1", params={"limit": Param(0, type="integer", minimum=1)})
    with pytest.raises(DagDefinitionError, match=r"'env'.*one of"):
        DAG("p2", params={"env": Param("qa", enum=["dev", "prod"])})


def test_unknown_param_type():
    with pytest.raises(ParamValidationError, match="unknown param type"):
        Param(1, type="int")


def test_bool_is_not_an_integer_param():
    with pytest.raises(DagDefinitionError, match="integer"):
        DAG("p_bool", params={"n": Param(True, type="integer")})


def test_conf_validated_at_run_time():
    dag = DAG(
        "params_run",
        params={
            "limit": Param(10, type="integer", minimum=1),
            "name": Param(type="string"),  # required: no default
            "plain": "untyped",
        },
    )
    assert dag.params.resolve({"name": "x"}) == {"limit": 10, "name": "x", "plain": "untyped"}
    assert dag.params.resolve({"name": "x", "limit": 5, "extra": 1})["extra"] == 1
    with pytest.raises(ParamValidationError, match=r"'limit'.*integer.*'many'"):
        dag.params.resolve({"name": "x", "limit": "many"})
    with pytest.raises(ParamValidationError, match=r"'name'.*required"):
        dag.params.resolve({})


def test_conf_validated_when_the_dag_runs(tmp_path):
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.store import MemoryRunStore

    with DAG("conf_run", params={"limit": Param(10, type="integer")}) as dag:
        EmptyOperator(task_id="t")
    store = MemoryRunStore()
    runner = InProcessDagRunner(dag, store, settings=None, log_folder=tmp_path)
    with pytest.raises(ParamValidationError) as info:
        runner.run(conf={"limit": "x"})
    assert "'conf_run'" in str(info.value)
    assert "'limit'" in str(info.value)
    assert runner.run(conf={"limit": 3}).succeeded


def test_default_args_params_are_merged():
    dag = DAG("p_merge", default_args={"params": {"a": 1, "b": 2}}, params={"b": 3})
    assert dict(dag.params) == {"a": 1, "b": 3}


# --- default_args -------------------------------------------------------------------------------------------


def test_default_args_apply_and_tasks_override():
    default_args = {"retries": 2, "retry_delay": timedelta(seconds=5), "owner": "data", "queue": "q1"}
    with DAG("defaults", default_args=default_args):
        inherits = EmptyOperator(task_id="inherits")
        overrides = BashOperator(task_id="overrides", bash_command="true", retries=0, retry_delay=1)
    assert inherits.retries == 2
    assert inherits.retry_delay == timedelta(seconds=5)
    assert inherits.owner == "data"
    assert inherits.queue == "q1"
    assert overrides.retries == 0
    assert overrides.retry_delay == timedelta(seconds=1)
    assert overrides.owner == "data"


def test_default_args_with_keys_an_operator_does_not_take_are_ignored():
    with DAG("defaults_extra", default_args={"retries": 1, "bash_command": "echo hi", "unknown_key": 1}):
        empty = EmptyOperator(task_id="e")
        bash = BashOperator(task_id="b")
    assert empty.retries == 1
    assert bash.bash_command == "echo hi"


def test_default_args_start_date_is_the_dag_start_date():
    dag = DAG("defaults_start", default_args={"start_date": datetime(2024, 1, 1)})
    assert dag.start_date is not None
    assert dag.start_date.year == 2024
    assert dag.start_date.tzinfo is not None


def test_task_group_default_args_layer_over_dag_default_args():
    with DAG("grp_defaults", default_args={"retries": 1, "owner": "dag"}):
        with TaskGroup("g", default_args={"retries": 4}):
            inner = EmptyOperator(task_id="t")
        outer = EmptyOperator(task_id="t2")
    assert inner.retries == 4
    assert inner.owner == "dag"
    assert outer.retries == 1


def test_explicit_default_args_on_operator():
    with DAG("op_defaults", default_args={"retries": 1}):
        op = EmptyOperator(task_id="t", default_args={"retries": 3})
    assert op.retries == 3


def test_retry_delay_as_seconds_and_bad_type():
    with DAG("delays"):
        op = EmptyOperator(task_id="t", retry_delay=30)
        assert op.retry_delay == timedelta(seconds=30)
        with pytest.raises(DagDefinitionError, match="retry_delay"):
            EmptyOperator(task_id="u", retry_delay="soon")


# --- task groups --------------------------------------------------------------------------------------------


def test_task_group_prefixes_ids_nested():
    with DAG("groups") as dag:
        with TaskGroup("outer") as outer:
            a = EmptyOperator(task_id="a")
            with TaskGroup("inner") as inner:
                b = EmptyOperator(task_id="b")
        with TaskGroup("flat", prefix_group_id=False):
            c = EmptyOperator(task_id="c")
    assert a.task_id == "outer.a"
    assert inner.group_id == "outer.inner"
    assert b.task_id == "outer.inner.b"
    assert c.task_id == "c"
    assert set(dag.task_ids) == {"outer.a", "outer.inner.b", "c"}
    assert {t.task_id for t in outer.iter_tasks()} == {"outer.a", "outer.inner.b"}


def test_group_dependencies_wire_roots_and_leaves():
    with DAG("group_edges") as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g") as group:
            first = EmptyOperator(task_id="first")
            second_a = EmptyOperator(task_id="second_a")
            second_b = EmptyOperator(task_id="second_b")
            first >> [second_a, second_b]
        end = EmptyOperator(task_id="end")
        start >> group >> end
    assert start.downstream_task_ids == {"g.first"}
    assert end.upstream_task_ids == {"g.second_a", "g.second_b"}
    assert first.upstream_task_ids == {"start"}
    assert dag.get_task("g.second_a").downstream_task_ids == {"end"}


def test_group_to_group():
    with DAG("g2g"):
        with TaskGroup("one") as one:
            EmptyOperator(task_id="x")
            EmptyOperator(task_id="y")
        with TaskGroup("two") as two:
            p = EmptyOperator(task_id="p")
        one >> two
    assert p.upstream_task_ids == {"one.x", "one.y"}


def test_task_group_outside_dag():
    with pytest.raises(DagDefinitionError, match="inside a DAG"):
        TaskGroup("lonely")


def test_invalid_group_id():
    with DAG("bad_group"), pytest.raises(DagDefinitionError, match="invalid task group id"):
        TaskGroup("has space")


# --- dependency algebra -------------------------------------------------------------------------------------


def test_shift_operators_with_lists():
    with DAG("lists"):
        a, b, c, d, e = (EmptyOperator(task_id=x) for x in "abcde")
        a >> [b, c] >> d
        [a, b] << e
    assert a.downstream_task_ids == {"b", "c"}
    assert d.upstream_task_ids == {"b", "c"}
    assert e.downstream_task_ids == {"a", "b"}
    assert a.upstream_task_ids == {"e"}


def test_lshift():
    with DAG("lshift"):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
        c << b << a
    assert a.downstream_task_ids == {"b"}
    assert c.upstream_task_ids == {"b"}


def test_set_upstream_and_downstream():
    with DAG("setters"):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
        a.set_downstream(b)
        c.set_upstream([a, b])
    assert c.upstream_task_ids == {"a", "b"}


def test_chain_with_lists_pairwise():
    with DAG("chained") as dag:
        t = {x: EmptyOperator(task_id=x) for x in ["start", "a1", "a2", "b1", "b2", "end"]}
        chain(t["start"], [t["a1"], t["a2"]], [t["b1"], t["b2"]], t["end"])
    assert t["start"].downstream_task_ids == {"a1", "a2"}
    assert t["a1"].downstream_task_ids == {"b1"}
    assert t["a2"].downstream_task_ids == {"b2"}
    assert t["end"].upstream_task_ids == {"b1", "b2"}
    assert [x.task_id for x in dag.roots] == ["start"]
    assert [x.task_id for x in dag.leaves] == ["end"]


def test_chain_lists_of_different_length():
    with DAG("chain_bad"):
        a, b, c = (EmptyOperator(task_id=x) for x in "abc")
        with pytest.raises(ValueError, match="same length"):
            chain([a, b], [c])


def test_chain_plain_sequence():
    with DAG("chain_seq"):
        a, b, c = (EmptyOperator(task_id=x) for x in "abc")
        chain(a, b, c)
    assert a.downstream_task_ids == {"b"}
    assert b.downstream_task_ids == {"c"}


def test_shift_with_a_non_task():
    with DAG("bad_shift"):
        a = EmptyOperator(task_id="a")
        with pytest.raises(TypeError, match="cannot set a dependency"):
            a >> "b"


def test_topological_order_keeps_definition_order():
    with DAG("topo") as dag:
        a, b, c, d = (EmptyOperator(task_id=x) for x in "abcd")
        d >> a
        b >> c
    assert [t.task_id for t in dag.topological_order()] == ["b", "c", "d", "a"]


# --- @dag decorator -----------------------------------------------------------------------------------------


def test_dag_decorator_function_args_become_params():
    from zonda.dag_definition import dag
    from zonda.decorators import task

    @dag(schedule="@daily", start_date=datetime(2024, 1, 1), tags=["x"])
    def my_pipeline(limit: int = 5, name: str = "n"):
        """The doc."""

        @task
        def show(value):
            return value

        show(limit)

    built = my_pipeline()
    assert isinstance(built, DAG)
    assert built.dag_id == "my_pipeline"
    assert dict(built.params) == {"limit": 5, "name": "n"}
    assert built.doc_md == "The doc."
    assert built.tags == ["x"]
    assert built.task_ids == ["show"]
    assert built.fileloc == __file__
    overridden = my_pipeline(limit=9)
    assert overridden.params["limit"] == 9


def test_dag_decorator_with_explicit_id_and_no_parentheses():
    from zonda.dag_definition import dag

    @dag("explicit_id")
    def ignored_name():
        pass

    @dag
    def bare():
        pass

    assert ignored_name().dag_id == "explicit_id"
    assert bare().dag_id == "bare"


def test_dag_decorator_params_run_through_the_dag(tmp_path):
    from zonda.dag_definition import dag
    from zonda.decorators import task
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.store import MemoryRunStore

    seen = []

    @dag
    def param_pipeline(limit: int = 5):
        @task
        def record(value):
            seen.append(value)

        record(limit)

    built = param_pipeline()
    result = InProcessDagRunner(built, MemoryRunStore(), settings=None, log_folder=tmp_path).run(conf={"limit": 7})
    assert result.succeeded
    assert seen == [7]


def test_dag_decorator_importable_from_package():
    import zonda.dag_definition  # already imported by `from zonda import DAG` above
    from zonda import dag

    assert callable(dag)
    assert not isinstance(dag, type(zonda))


def test_operator_created_outside_dag_then_linked():
    with DAG("late") as dag:
        a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b
    assert b.dag is dag
    assert "b" in dag.task_dict


def test_missing_upstream_detected_by_validate():
    dag = DAG("dangling")
    a = EmptyOperator(task_id="a", dag=dag)
    a.downstream_task_ids.add("ghost")
    with pytest.raises(DagDefinitionError, match=r"'dangling'.*'ghost'"):
        dag.validate()


# --- misspelled operator arguments ----------------------------------------------------------------------------


def _builtin_operator_classes() -> list[type]:
    """Every operator and sensor class Zonda and its providers ship (found, not listed by hand)."""
    import importlib
    import inspect

    from zonda.operators.base import BaseOperator

    modules = [
        "zonda.operators.bash",
        "zonda.operators.python",
        "zonda.operators.empty",
        "zonda.sensors.base",
        "zonda.sensors.filesystem",
        "zonda.sensors.python",
        "zonda.sensors.time_delta",
        "zonda.transfers.base",
        "zonda_http.operators",
        "zonda_http.sensors",
        "zonda_elasticsearch.operators",
        "zonda_elasticsearch.sensors",
        "zonda_elasticsearch.transfers",
    ]
    found: dict[str, type] = {}
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseOperator) and value.__module__ == name:
                found[f"{name}.{value.__name__}"] = value
    return [found[key] for key in sorted(found)]


def _typo(name: str) -> str:
    middle = len(name) // 2
    return name[:middle] + name[middle + 1 :]  # one letter dropped: bash_command -> bash_cmmand


def _own_argument(cls: type) -> tuple[str, bool]:
    """An argument of the class's own ``__init__`` (a required one when it has one) and whether it is required."""
    import inspect

    from zonda.operators.base import BaseOperator

    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = [
            p
            for p in inspect.signature(getattr(init, "__wrapped__", init)).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and len(p.name) >= 5 and p.name != "task_id"
        ]
        if params:
            required = [p for p in params if p.default is p.empty]
            chosen = (required or params)[0]
            own_init = klass is cls or klass.__dict__.get("__init__") is getattr(cls, "__init__", None)
            return chosen.name, bool(required) and own_init and klass is not BaseOperator
    raise AssertionError(f"{cls} has no argument to misspell")


BUILTIN_OPERATORS = _builtin_operator_classes()


def test_the_builtin_operator_list_is_complete():
    names = {cls.__name__ for cls in BUILTIN_OPERATORS}
    assert {"BashOperator", "PythonOperator", "BranchPythonOperator", "ShortCircuitOperator", "EmptyOperator"} <= names
    assert {"FileSensor", "PythonSensor", "TimeDeltaSensor", "HttpOperator", "HttpSensor"} <= names


@pytest.mark.parametrize("cls", BUILTIN_OPERATORS, ids=lambda cls: cls.__name__)
def test_a_misspelled_argument_of_every_builtin_operator_is_named_as_a_typo(cls):
    name, required = _own_argument(cls)
    typo = _typo(name)
    with DAG("typos"), pytest.raises(DagDefinitionError) as info:
        cls(task_id="t", **{typo: "x"})
    message = str(info.value)
    assert message.startswith(f"{cls.__name__} 't' got an unexpected argument {typo!r}; did you mean {name!r}?")
    if required:
        assert f"(and {name!r} is required)" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: BashOperator(task_id="x", bash_comand="echo"),
            "BashOperator 'x' got an unexpected argument 'bash_comand'; did you mean 'bash_command'? "
            "(and 'bash_command' is required)",
        ),
        (
            lambda: PythonOperator(task_id="x", python_calable=print),
            "PythonOperator 'x' got an unexpected argument 'python_calable'; did you mean 'python_callable'? "
            "(and 'python_callable' is required)",
        ),
        (  # a task-level setting, with the required argument given
            lambda: BashOperator(task_id="x", bash_command="echo", retires=2),
            "BashOperator 'x' got an unexpected argument 'retires'; did you mean 'retries'?",
        ),
        (
            lambda: BashOperator(task_id="x", bash_command="echo", retires=2, colour="red"),
            "BashOperator 'x' got unexpected arguments 'colour', 'retires' (did you mean 'retries'?); "
            "see BashOperator's documentation for the arguments it takes",
        ),
        (
            lambda: PythonOperator(task_id="x"),
            "PythonOperator 'x' is missing its required argument 'python_callable'",
        ),
        (  # mapped: checked when the file is parsed, not when the first instance runs
            lambda: BashOperator.partial(task_id="x", bash_comand="echo").expand(env=[{"A": "1"}]),
            "BashOperator 'x' got an unexpected argument 'bash_comand'; did you mean 'bash_command'? "
            "(and 'bash_command' is required)",
        ),
        (
            lambda: BashOperator.partial(task_id="x").expand(bash_comand=["echo 1"]),
            "BashOperator 'x' got an unexpected argument 'bash_comand'; did you mean 'bash_command'? "
            "(and 'bash_command' is required)",
        ),
    ],
)
def test_misspelled_operator_arguments(make, expected):
    with DAG("typos"), pytest.raises(DagDefinitionError) as info:
        make()
    assert str(info.value) == expected


def test_a_custom_operator_subclass_gets_the_same_check():
    from zonda.operators.base import BaseOperator

    class LoadTable(BaseOperator):
        def __init__(self, *, table: str, batch_size: int = 100, **kwargs):
            super().__init__(**kwargs)
            self.table = table

    class LoadUsers(LoadTable):
        def __init__(self, *, schema: str = "public", **kwargs):
            super().__init__(**kwargs)

    with DAG("custom"):
        with pytest.raises(DagDefinitionError) as info:
            LoadTable(task_id="load", tabel="users")
        assert str(info.value) == (
            "LoadTable 'load' got an unexpected argument 'tabel'; did you mean 'table'? (and 'table' is required)"
        )
        with pytest.raises(DagDefinitionError) as info:
            LoadUsers(task_id="users", table="users", bacth_size=5)  # an argument of the parent class
        assert "'bacth_size'; did you mean 'batch_size'?" in str(info.value)
        LoadUsers(task_id="ok", table="users", batch_size=5, retries=1)  # valid arguments along the MRO pass


def test_a_type_error_inside_an_operator_is_not_blamed_on_its_arguments():
    from zonda.operators.base import BaseOperator

    class Broken(BaseOperator):
        def __init__(self, *, size: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.size = size + "1"  # a bug in the operator, not in the DAG

    with DAG("bugs"), pytest.raises(TypeError, match="unsupported operand"):
        Broken(task_id="b")


def test_a_misspelled_argument_is_the_dag_files_import_error_with_its_line(tmp_path):
    from zonda.dagbag import DagBag

    dag_file = tmp_path / "typo.py"
    dag_file.write_text(
        "from zonda import DAG\n"
        "from zonda.operators import BashOperator\n"
        "\n"
        "with DAG('typo_dag'):\n"
        "    BashOperator(task_id='x', bash_comand='echo hi')\n",
        encoding="utf-8",
    )
    bag = DagBag(tmp_path).collect()
    assert "typo_dag" not in bag.dags
    error = bag.import_errors[str(dag_file.resolve())]
    assert f'File "{dag_file.resolve()}", line 5' in error
    assert error.splitlines()[-1] == (
        "zonda.exceptions.DagDefinitionError: BashOperator 'x' got an unexpected argument 'bash_comand'; "
        "did you mean 'bash_command'? (and 'bash_command' is required)"
    )


def test_a_misspelled_task_setting_of_a_decorated_task_names_the_decorator():
    from zonda.decorators import task

    with DAG("decorated"):

        @task(retires=3)
        def first(x):
            return x

        @task.bash(retires=1)
        def command():
            return "echo hi"

        with pytest.raises(DagDefinitionError) as info:
            first(1)
        assert str(info.value) == "@task 'first' got an unexpected argument 'retires'; did you mean 'retries'?"
        with pytest.raises(DagDefinitionError) as info:
            command()
        assert str(info.value) == "@task.bash 'command' got an unexpected argument 'retires'; did you mean 'retries'?"
