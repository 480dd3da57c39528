"""Data never becomes code (issue 11, section 1).

Three promises, each with its tests:

1. A value that reaches an operator as data (an XCom, a DAG-run param or conf, a mapped element pulled from
   an upstream task) is never rendered as a template, on every path that runs tasks: ``dags test`` (the
   in-process runner), ``tasks test`` and the scheduler with a real LocalExecutor. Literal values written in
   the DAG file are still rendered, as in Airflow.
2. Nothing reachable from the template context hands out a module, a function's globals, code, frame or
   traceback objects, or a class's internals; a walk over everything a real task's templates can reach
   proves it, and the known escapes fail with the sandbox's error.
3. The example DAGs never paste conf or params into a shell command (they pass them through ``env``).
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
import types
from collections import deque
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from zonda import DAG, dag, task
from zonda.exceptions import TemplateRenderError
from zonda.operators import BaseOperator, BashOperator, PythonOperator
from zonda.testing import run_dag

START = datetime(2024, 1, 1)
REPO = Path(__file__).resolve().parents[2]

#: Conf values an attacker would send; none may change on its way to the task.
PAYLOADS = [
    '{{ macros.uuid.os.popen("id").read() }}',
    "{{ 7 * 6 }}",
    "{% for i in range(3) %}x{% endfor %}",
    "{# hidden #}visible",
    "{{ ds }}",
]


# ================================================================================================ 1. data


def _record_from_xcom(source: Any, seen: list[Any]) -> Any:
    """A ``@task`` that records each mapped element it receives."""

    @task(task_id="consume")
    def consume(value: Any) -> None:
        seen.append(value)

    return consume.expand(value=source)


def test_seen_case_conf_names_through_xcom_into_task_bash_expand(zonda_home: Path) -> None:
    """The reported case: ``dag_run.conf["names"]`` returned by a task and expanded into ``@task.bash``."""
    received: list[str] = []
    with DAG("seen_case", start_date=START) as the_dag:

        @task
        def names(**context: Any) -> list[str]:
            return context["dag_run"].conf["names"]

        @task.bash(env={"NAME": "{{ ti.xcom_pull(task_ids='names')[ti.map_index] }}"})
        def greet(name: str) -> str:
            received.append(name)
            return 'printf "%s" "$NAME"'

        greet.expand(name=names())
    result = run_dag(the_dag, conf={"names": PAYLOADS})
    assert result.succeeded, [ti.error for ti in result.task_instances]
    assert received == PAYLOADS
    assert result.ti("names").xcom_pull(task_ids="greet") == PAYLOADS


class Echo(BaseOperator):
    """A custom operator with templated fields of several shapes; returns what it was given."""

    template_fields = ("text", "items", "mapping")
    template_ext = (".txt",)

    def __init__(self, *, text: Any = "", items: Any = None, mapping: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.items = items
        self.mapping = mapping

    def execute(self, context: Any) -> Any:
        return {"text": self.text, "items": self.items, "mapping": self.mapping}


class Stripping(BaseOperator):
    """Changes its templated argument in ``__init__`` (against the convention): what it derived from data
    must stay data."""

    template_fields = ("text",)

    def __init__(self, *, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text.strip()

    def execute(self, context: Any) -> Any:
        return self.text


def _values(result: Any, task_id: str) -> list[Any]:
    """Every mapped instance's return value, in map-index order."""
    return result.ti(task_id, 0).xcom_pull(task_ids=task_id)


def test_expand_from_xcom_is_never_rendered_in_any_operator_shape(zonda_home: Path) -> None:
    seen: list[Any] = []
    with DAG("expand_shapes", start_date=START) as the_dag:

        @task
        def payloads() -> list[str]:
            return PAYLOADS

        @task
        def envs() -> list[dict[str, str]]:
            return [{"VALUE": p} for p in PAYLOADS]

        @task
        def as_mapping() -> dict[str, str]:
            return {f"k{i}": p for i, p in enumerate(PAYLOADS)}

        @task
        def commands() -> list[str]:
            return ["printf '%s' '{{ 7 * 6 }}'", "printf '%s' 'run.sh'"]

        data = payloads()
        _record_from_xcom(data, seen)
        # A whole command from data: run as it is, not rendered (and "run.sh" is not read as a template file).
        BashOperator.partial(task_id="run_commands").expand(bash_command=commands())
        BashOperator.partial(task_id="with_env", bash_command='printf "%s|%s" "{{ ds }}" "$VALUE"').expand(env=envs())
        Echo.partial(task_id="texts", items=["{{ ds }}"]).expand(text=data)
        Echo.partial(task_id="dict_items").expand(mapping=as_mapping())
        Stripping.partial(task_id="stripped").expand(text=data)
    result = run_dag(the_dag, "2024-01-01")
    assert result.succeeded, [(ti.task_id, ti.error) for ti in result.task_instances]
    assert seen == PAYLOADS
    assert _values(result, "run_commands") == ["{{ 7 * 6 }}", "run.sh"]
    # Literal partial template rendered, env from data untouched.
    assert _values(result, "with_env") == [f"2024-01-01|{p}" for p in PAYLOADS]
    assert [v["text"] for v in _values(result, "texts")] == PAYLOADS
    assert [v["items"] for v in _values(result, "texts")] == [["2024-01-01"]] * len(PAYLOADS)
    assert [v["mapping"] for v in _values(result, "dict_items")] == [(f"k{i}", p) for i, p in enumerate(PAYLOADS)]
    assert _values(result, "stripped") == [p.strip() for p in PAYLOADS]


def test_expand_kwargs_from_xcom_and_references_inside_literals_stay_data(zonda_home: Path) -> None:
    with DAG("expand_kwargs_data", start_date=START) as the_dag:

        @task
        def rows() -> list[dict[str, str]]:
            return [{"text": p, "mapping": {"nested": p}} for p in PAYLOADS]

        @task
        def one_row() -> dict[str, str]:
            return {"text": "{{ 7 * 6 }}"}

        @task
        def word() -> str:
            return "{{ ds }}"

        Echo.partial(task_id="from_xcom").expand_kwargs(rows())
        # A literal list: an element that is an upstream output is data, a literal dict is rendered.
        Echo.partial(task_id="mixed").expand_kwargs([one_row(), {"text": "{{ ds }}"}])
        # References nested in literal lists and dicts: only the literal parts are rendered.
        w = word()
        Echo.partial(task_id="nested").expand(
            items=[[w, "{{ ds }}"]], mapping=[{"from_xcom": w, "literal": "{{ ds_nodash }}"}]
        )
    result = run_dag(the_dag, "2024-01-01")
    assert result.succeeded, [(ti.task_id, ti.error) for ti in result.task_instances]
    assert [(v["text"], v["mapping"]) for v in _values(result, "from_xcom")] == [(p, {"nested": p}) for p in PAYLOADS]
    assert [v["text"] for v in _values(result, "mixed")] == ["{{ 7 * 6 }}", "2024-01-01"]
    [nested] = _values(result, "nested")
    assert nested["items"] == ["{{ ds }}", "2024-01-01"]
    assert nested["mapping"] == {"from_xcom": "{{ ds }}", "literal": "20240101"}


def test_literal_expand_values_and_partial_kwargs_are_still_rendered(zonda_home: Path) -> None:
    """As in Airflow: what the DAG file says is a template; only data is not."""
    seen: list[tuple[str, str]] = []
    with DAG("literal_expand", start_date=START, params={"n": 21}) as the_dag:

        @task
        def pair(prefix: str, value: str) -> None:
            seen.append((prefix, value))

        @task
        def data() -> list[str]:
            return ["{{ ds }}"]

        pair.partial(prefix="{{ ds_nodash }}").expand(value=["{{ ds }}", "plain"])
        pair.override(task_id="partial_literal").partial(prefix="{{ ds_nodash }}").expand(value=data())
        Echo.partial(task_id="literal_text").expand(text=["{{ params.n * 2 }}"], mapping=[{"k": "{{ ds }}"}])
    result = run_dag(the_dag, "2024-01-01")
    assert result.succeeded, [(ti.task_id, ti.error) for ti in result.task_instances]
    assert sorted(seen) == [("20240101", "2024-01-01"), ("20240101", "plain"), ("20240101", "{{ ds }}")]
    assert _values(result, "literal_text") == [{"text": "42", "items": None, "mapping": {"k": "2024-01-01"}}]


def test_a_template_file_name_from_data_is_not_read(zonda_home: Path, tmp_path: Path) -> None:
    """A value from data ending in a template extension is a string, not a file to read and render."""
    folder = tmp_path / "dagdir"
    folder.mkdir()
    (folder / "secret.txt").write_text("{{ 7 * 6 }} from the file")
    with DAG("file_name_data", start_date=START, template_searchpath=[str(folder)]) as the_dag:

        @task
        def names() -> list[str]:
            return ["secret.txt"]

        Echo.partial(task_id="from_data").expand(text=names())
        Echo.partial(task_id="literal").expand(text=["secret.txt"])
    result = run_dag(the_dag, "2024-01-01")
    assert result.succeeded, [(ti.task_id, ti.error) for ti in result.task_instances]
    assert [v["text"] for v in _values(result, "from_data")] == ["secret.txt"]
    assert [v["text"] for v in _values(result, "literal")] == ["42 from the file"]


def test_xcom_args_in_templated_fields_are_resolved_after_rendering(zonda_home: Path) -> None:
    """Not mapped: an XComArg in a templated field, alone or nested in lists and dicts, is data."""
    with DAG("xcomarg_fields", start_date=START) as the_dag:

        @task
        def payload() -> str:
            return "{{ 7 * 6 }}"

        value = payload()
        Echo(task_id="echo", text=value, items=[value, "{{ ds }}"], mapping={"a": {"b": value}, "c": "{{ ds }}"})
        PythonOperator(
            task_id="python",
            python_callable=lambda a, b: [a, b],
            op_kwargs={"a": value, "b": ["{{ ds }}", value]},
        )
        BashOperator(task_id="bash", bash_command='printf "%s" "$V"', env={"V": value})
    result = run_dag(the_dag, "2024-01-01")
    assert result.succeeded, [(ti.task_id, ti.error) for ti in result.task_instances]
    assert result.ti("echo").xcom_pull(task_ids="echo") == {
        "text": "{{ 7 * 6 }}",
        "items": ["{{ 7 * 6 }}", "2024-01-01"],
        "mapping": {"a": {"b": "{{ 7 * 6 }}"}, "c": "2024-01-01"},
    }
    assert result.ti("python").xcom_pull(task_ids="python") == ["{{ 7 * 6 }}", ["2024-01-01", "{{ 7 * 6 }}"]]
    assert result.ti("bash").xcom_pull(task_ids="bash") == "{{ 7 * 6 }}"


@dag(dag_id="dag_params", start_date=START, schedule=None)
def _params_dag(name: str = "default", names: list | None = None) -> None:
    @task
    def show(value: str) -> str:
        return value

    show(name)
    show.override(task_id="show_mapped").expand(value=[name, "{{ ds }}"])
    Echo(task_id="echo", text=name, items=["{{ ds }}", name])


@pytest.mark.parametrize("payload", PAYLOADS)
def test_dag_function_arguments_are_data_in_dags_test_and_tasks_test(zonda_home: Path, payload: str) -> None:
    from zonda.testing import run_task

    the_dag = _params_dag()
    result = run_dag(the_dag, "2024-01-01", conf={"name": payload})
    assert result.succeeded, [(ti.task_id, ti.error) for ti in result.task_instances]
    assert result.ti("show").xcom_pull(task_ids="show") == payload
    assert _values(result, "show_mapped") == [payload, "2024-01-01"]
    assert result.ti("echo").xcom_pull(task_ids="echo")["items"] == ["2024-01-01", payload]
    # `tasks test`: the single-task path resolves mapped input on its own.
    outcome = run_task(the_dag, "show_mapped", "2024-01-01", conf={"name": payload}, map_index=0)
    assert outcome.ti.state.value == "success" and outcome.xcoms["return_value"] == payload
    outcome = run_task(the_dag, "echo", "2024-01-01", conf={"name": payload})
    assert outcome.xcoms["return_value"]["text"] == payload


SCHEDULED_DAG = """
import shlex
from datetime import datetime
from zonda import DAG, task
from zonda.operators import BashOperator


@task
def names(**context):
    return context["dag_run"].conf["names"]


@task
def envs(**context):
    return [{"NAME": name} for name in context["dag_run"].conf["names"]]


@task.bash
def greet(name):
    return "printf '%s' " + shlex.quote(name)


with DAG("scheduled_data", schedule=None, start_date=datetime(2024, 1, 1)):
    greet.expand(name=names())
    BashOperator.partial(task_id="with_env", bash_command='printf "%s" "$NAME"').expand(env=envs())
"""


def test_scheduler_and_local_executor_never_render_data(zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker path (workload -> unmap in a task process), with a real scheduler and LocalExecutor."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    try:
        import scheduler_helpers as h
    finally:
        sys.path.remove(str(REPO / "tests" / "integration"))
    from sqlalchemy import select

    from zonda import serde
    from zonda.executors.local import LocalExecutor
    from zonda.metastore import tables as t
    from zonda.scheduler.runs import trigger_dag
    from zonda.scheduler.scheduler import Scheduler

    settings, metastore = h.configure(zonda_home, monkeypatch, None)
    try:
        h.write_dag(zonda_home, "scheduled_data.py", SCHEDULED_DAG)
        h.store_dags(settings, metastore)
        run = int(trigger_dag(metastore.engine, "scheduled_data", conf={"names": PAYLOADS})["id"])
        scheduler = Scheduler(settings, executor=LocalExecutor(parallelism=2, settings=settings), metastore=metastore)
        assert h.drive(scheduler, [run], timeout=60) == {run: "success"}
        with metastore.engine.connect() as conn:
            rows = conn.execute(
                select(t.xcom.c.task_id, t.xcom.c.map_index, t.xcom.c.value).where(
                    t.xcom.c.dag_run_id == run, t.xcom.c.task_id.in_(["greet", "with_env"])
                )
            ).all()
        got = {(task_id, index): serde.loads(value) for task_id, index, value in rows}
        for task_id in ("greet", "with_env"):  # each payload came back as sent: none was rendered
            assert [got[(task_id, i)] for i in range(len(PAYLOADS))] == PAYLOADS
    finally:
        metastore.dispose()


# ============================================================================================ 2. the sandbox

PLUGIN = """
import platform
import types

from zonda import hookimpl


def shout(text):
    return str(text).upper()


@hookimpl
def zonda_template_macros():
    return {
        "shout": shout,
        "helpers": types.SimpleNamespace(shout=shout, limit=10, table={"a": [1, 2]}),
        # A plugin that hands out a module by mistake: templates must not be able to use it.
        "platform_module": platform,
    }
"""


def _user_helper(value: Any) -> str:
    return f"<{value}>"


def _module_factory() -> Any:
    """A user macro that returns a module (by mistake or on purpose)."""
    import platform

    return platform


@pytest.fixture
def full_context(zonda_home: Path, zonda_metastore: Any, zonda_settings: Any) -> types.SimpleNamespace:
    """The template environment and context of a real task run: metastore-backed, with a real folder plugin
    adding macros and a DAG with user macros (one of them a module) and filters."""
    import json as json_module

    from zonda.plugins.manager import PluginManager
    from zonda.runner.dag_runner import InProcessDagRunner
    from zonda.runner.store import MetastoreRunStore

    plugins_folder = zonda_settings.plugins_folder
    plugins_folder.mkdir(parents=True, exist_ok=True)
    (plugins_folder / "template_extras.py").write_text(PLUGIN)
    manager = PluginManager.from_settings(zonda_settings).load()
    assert [r.source.name for r in manager.records() if r.loaded and "zonda_template_macros" in r.hooks] == [
        "template_extras"
    ]
    captured: dict[str, Any] = {}
    template_names: dict[str, Any] = {}

    def capture(**context: Any) -> None:
        captured.update(context)

    @jinja2.pass_context
    def grab(jinja_context: Any) -> str:
        template_names.update(jinja_context.get_all())
        return ""

    with DAG(
        "walk",
        start_date=START,
        params={"who": "world", "nested": {"list": [1, "two"]}},
        user_defined_macros={
            "helper": _user_helper,
            "json_module": json_module,
            "limit": 3,
            "grab": grab,
            "module_factory": _module_factory,
        },
        user_defined_filters={"wrap": _user_helper},
    ) as the_dag:
        PythonOperator(task_id="capture", python_callable=capture, op_kwargs={"t": "{{ macros.shout(params.who) }}"})
    result = run_dag(the_dag, "2024-01-01", conf={"who": "x"}, metastore=zonda_metastore, plugins=manager)
    assert result.succeeded and captured["t"] == "X"
    captured.pop("t")
    runner = InProcessDagRunner(
        the_dag, MetastoreRunStore(zonda_metastore), settings=zonda_settings, log_folder=zonda_home, plugins=manager
    )
    # The names a template of that task sees, taken from inside a render by the run's own renderer.
    renderer = runner.make_environment(captured["params"]).renderer_factory()
    assert renderer.render("{{ grab() }}", captured) == ""
    template_names.pop("grab")
    return types.SimpleNamespace(env=renderer.environment, names=template_names, renderer=renderer, context=captured)


#: Builtins that would let a template fetch attributes by name, import, read files or run code.
_CODE_BUILTINS = {
    id(f) for f in (getattr, setattr, delattr, eval, exec, compile, open, globals, locals, vars, __import__, breakpoint)
}
_CLASS_INTERNALS = {"mro", "__subclasses__", "__dict__", "__bases__", "__mro__", "__globals__", "__code__"}
_LEAVES = (str, bytes, int, float, complex, bool, type(None), datetime, date, time, timedelta)


def _forbidden(value: Any) -> str | None:
    """What the walk must never reach (checked independently of zonda.templating's own rules)."""
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, types.CodeType | types.FrameType | types.TracebackType | types.CellType):
        return type(value).__name__
    if isinstance(value, types.MappingProxyType):
        return "a class's attribute dictionary"
    if isinstance(value, dict) and "__builtins__" in value:
        return "a globals dictionary"
    if isinstance(value, dict) and any(vars(m) is value for m in list(sys.modules.values()) if m is not None):
        return "a module's dictionary"
    if id(value) in _CODE_BUILTINS:
        return f"builtin {value.__name__}"
    name = getattr(value, "__name__", None) if callable(value) else None
    if name in _CLASS_INTERNALS and isinstance(getattr(value, "__self__", None), type):
        return f"class internals ({name})"
    return None


def _walk(env: Any, roots: dict[str, Any], *, depth: int, limit: int) -> tuple[list[str], int]:
    """Breadth first over attributes the sandbox allows (``env.getattr``) and items of mappings and sequences
    (``env.getitem``), ``depth`` levels deep, at most ``limit`` objects; returns the problems found."""
    problems: list[str] = []
    seen: set[int] = set()
    queue: deque[tuple[str, Any, int]] = deque((name, value, 0) for name, value in roots.items())
    visited = 0
    while queue and visited < limit:
        path, value, level = queue.popleft()
        if isinstance(value, jinja2.Undefined):  # refused (or missing): the template cannot use it
            continue
        problem = _forbidden(value)
        if problem is not None:
            problems.append(f"{path}: {problem}")
            continue
        if id(value) in seen or isinstance(value, _LEAVES) or level >= depth:
            continue
        seen.add(id(value))
        visited += 1
        children: list[tuple[str, Any]] = []
        try:
            if isinstance(value, dict):
                children += [(f"{path}[{k!r}]", env.getitem(value, k)) for k in list(value)[:50]]
            elif isinstance(value, list | tuple | set | frozenset):
                children += [(f"{path}[{i}]", item) for i, item in enumerate(list(value)[:50])]
        except Exception:
            pass
        for attr in dir(value):
            try:
                child = env.getattr(value, attr)
            except Exception:  # a property that fails outside a render: nothing reached
                continue
            children.append((f"{path}.{attr}", child))
        queue.extend((child_path, child, level + 1) for child_path, child in children)
    return problems, visited


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the walk reads deprecated SQLAlchemy properties
def test_nothing_reachable_from_a_task_context_leads_to_code(full_context: types.SimpleNamespace) -> None:
    env, names = full_context.env, full_context.names
    # What is in reach: the context, the plugin's macros, the user macros, the Jinja globals.
    for name in ("ti", "dag", "dag_run", "task", "params", "conf", "macros", "var", "cycler", "helper", "json_module"):
        assert name in names
    problems, visited = _walk(env, names, depth=6, limit=40_000)
    assert problems == [], "\n".join(problems)
    assert 500 < visited < 40_000, visited  # the walk really went places, and was not cut short
    assert isinstance(names["json_module"], jinja2.Undefined)  # the user macro that is a module is refused
    assert isinstance(env.getattr(names["macros"], "platform_module"), jinja2.Undefined)


def test_macros_offer_functions_and_values(full_context: types.SimpleNamespace) -> None:
    render = full_context.renderer.render
    context = full_context.context
    assert len(render("{{ macros.uuid.uuid4() }}", context)) == 36
    assert render("{{ macros.uuid.UUID(int=1).hex }}", context) == "0" * 31 + "1"
    assert render("{{ macros.uuid.uuid5(macros.uuid.NAMESPACE_DNS, 'x') }}", context).count("-") == 4
    assert float(render("{{ macros.time.time() }}", context)) > 0
    assert render("{{ macros.time.strftime('%Y', macros.time.gmtime(0)) }}", context) == "1970"
    assert render("{{ macros.json.dumps(params.nested) }}", context) == '{"list": [1, "two"]}'
    assert render("{{ macros.json.loads('[1]')[0] }}", context) == "1"
    assert 0 <= float(render("{{ macros.random() }}", context)) < 1
    assert render("{{ macros.datetime(2024, 1, 2).strftime('%d') }}", context) == "02"
    assert render("{{ macros.ds_add(ds, 1) }} {{ macros.timedelta(days=1).days }}", context) == "2024-01-02 1"
    assert render("{{ macros.shout('a') }} {{ macros.helpers.table.a[1] }}", context) == "A 2"
    assert render("{{ helper(limit) }} {{ 'x' | wrap }}", context) == "<3> <x>"


#: Known ways out of a Jinja sandbox, and the ways out Zonda's own objects offered; each must fail to render.
ESCAPES = [
    # macros were modules: gone, so these name a missing attribute
    ('{{ macros.uuid.os.popen("id").read() }}', "has no attribute 'os'"),
    ('{{ macros.uuid.sys.modules["os"] }}', "has no attribute 'sys'"),
    ("{{ macros.json.decoder.re }}", "has no attribute 'decoder'"),
    ("{{ macros.time.sleep(30) }}", "has no attribute 'sleep'"),
    # modules handed out by plugins, user macros, Zonda's objects: refused by the sandbox
    ("{{ macros.platform_module.system() }}", "sandbox refused"),
    ("{{ json_module.loads('1') }}", "sandbox refused"),
    ("{{ dag.user_defined_macros['json_module'] }}", "sandbox refused"),
    ("{{ module_factory().system() }}", "sandbox refused"),
    ("{{ ti.store.engine.dialect.dbapi.connect(':memory:') }}", "sandbox refused"),
    ("{{ task_instance.store.t }}", "sandbox refused"),
    # class internals, function globals, frames: Jinja's rules, kept
    ("{{ dag.__class__ }}", "sandbox refused"),
    ("{{ params.__class__.__mro__ }}", "sandbox refused"),
    ("{{ macros.datetime.mro() }}", "sandbox refused"),
    ("{{ macros.datetime.__subclasses__() }}", "sandbox refused"),
    ("{{ ti.task.python_callable.__globals__ }}", "sandbox refused"),
    ("{{ macros.ds_add.__globals__ }}", "sandbox refused"),
    ("{{ macros.random.__self__ }}", "sandbox refused"),
    ("{{ cycler.__init__.__globals__ }}", "sandbox refused"),
    ("{{ lipsum.__globals__ }}", "sandbox refused"),
    ("{{ namespace.__init__ }}", "sandbox refused"),
    ("{{ self._TemplateReference__context }}", "sandbox refused"),
    ("{{ (dag.tasks | map(attribute='task_id')).gi_frame }}", "sandbox refused"),
    ("{{ dag | attr('__class__') }}", "sandbox refused"),
    ("{{ [dag] | map(attribute='__class__') | first }}", "sandbox refused"),
    ("{{ '{0.__class__}'.format(dag) }}", "sandbox refused"),
    ("{{ helper(dag.__class__) }}", "sandbox refused"),
]


@pytest.mark.parametrize(("template", "expected"), ESCAPES, ids=[t for t, _ in ESCAPES])
def test_escapes_fail_with_a_clear_error(full_context: types.SimpleNamespace, template: str, expected: str) -> None:
    with pytest.raises(TemplateRenderError, match=expected) as caught:
        full_context.renderer.render(template, full_context.context)
    assert len(str(caught.value).splitlines()) == 1


def test_native_rendering_refuses_the_same(zonda_home: Path) -> None:
    import os

    from zonda.templating import TemplateRenderer

    renderer = TemplateRenderer([], native=True, user_defined_macros={"os": os, "get": getattr})
    assert renderer.render("{{ [1, 2] }}", {"x": 1}) == [1, 2]
    for template in ("{{ os }}", "{{ os.getcwd() }}", "{{ get(x, 'real') }}", "{{ x.__class__ }}"):
        with pytest.raises(TemplateRenderError, match="sandbox refused"):
            renderer.render(template, {"x": 1})
    with pytest.raises(TemplateRenderError, match="sandbox refused"):
        renderer.render("{{ m }}", {"m": os})  # a module in the context itself


# ====================================================================================== 3. the example DAGs

#: Data inside a template: conf, params, a DAG run's conf, XComs.
_DATA_IN_TEMPLATE = re.compile(r"\{\{(?:(?!\}\}).)*\b(params|conf|dag_run|xcom_pull)\b", re.DOTALL)


def _example_sources() -> list[tuple[str, str]]:
    """Every example a user copies: the example DAGs of core and providers, the plugins, README's code."""
    files = [
        *sorted((REPO / "core" / "src" / "zonda" / "example_dags").glob("*.py")),
        *sorted((REPO / "providers").glob("*/src/*/example_dags/*.py")),
        *sorted((REPO / "plugins").rglob("*.py")),
    ]
    sources = [(str(path.relative_to(REPO)), path.read_text(encoding="utf-8")) for path in files]
    for readme in sorted(
        [REPO / "README.md", *(REPO / "providers").glob("*/README.md"), *(REPO / "plugins").glob("*/README.md")]
    ):
        blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)
        # A block inside a list item is indented as a whole.
        sources += [
            (f"{readme.relative_to(REPO)} (block {i + 1})", textwrap.dedent(block)) for i, block in enumerate(blocks)
        ]
    return sources


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _is_task_bash(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "bash"


def _shell_data_problems(source: str) -> list[str]:
    """Where a shell command is built from data: conf/params/XCom templates in ``bash_command``, or a
    ``@task.bash`` function or ``bash_command`` assembling the script from values (f-strings, +, %, format)."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "bash_command":
            for text in _strings(node.value):
                found = _DATA_IN_TEMPLATE.search(text)
                if found:
                    problems.append(f"line {node.value.lineno}: bash_command renders {found.group(1)}: {text!r}")
            if any(isinstance(n, ast.JoinedStr | ast.BinOp) for n in ast.walk(node.value)):
                problems.append(f"line {node.value.lineno}: bash_command is assembled from values")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(_is_task_bash, node.decorator_list)):
            for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None):
                built = [n for n in ast.walk(ret.value) if isinstance(n, ast.JoinedStr | ast.BinOp)]
                calls = [n for n in ast.walk(ret.value) if isinstance(n, ast.Call)]
                if built or calls:
                    problems.append(f"line {ret.lineno}: @task.bash {node.name}() builds its script from values")
    return problems


def test_the_rule_catches_data_in_shell_commands() -> None:
    """The scanner itself: what it must flag, and what it must let through."""
    flagged = [
        'BashOperator(task_id="a", bash_command="echo {{ params.x }}")',
        "BashOperator(task_id='a', bash_command='echo {{ dag_run.conf[\"k\"] }}')",
        "BashOperator(task_id='a', bash_command=\"echo {{ ti.xcom_pull(task_ids='t') }}\")",
        "BashOperator(task_id='a', bash_command='echo {{ conf.get(\"core\", \"x\") }}')",
        "BashOperator.partial(task_id='a').expand(bash_command=['echo {{ params.x }}'])",
        "BashOperator(task_id='a', bash_command=f'echo {name}')",
        "@task.bash\ndef f(name):\n    return f'echo {name}'",
        "@task.bash(env={})\ndef f(name):\n    return 'echo ' + name",
    ]
    for source in flagged:
        assert _shell_data_problems(source), source
    allowed = [
        "BashOperator(task_id='a', bash_command='echo \"$X\" {{ ds }}', env={'X': '{{ params.x }}'})",
        "@task.bash\ndef f():\n    return 'echo \"$NAME\"'",
    ]
    for source in allowed:
        assert _shell_data_problems(source) == [], source


def test_examples_pass_conf_params_and_xcoms_to_shell_commands_through_env() -> None:
    sources = _example_sources()
    assert len(sources) >= 10  # the examples were found
    problems = [f"{name}, {p}" for name, source in sources for p in _shell_data_problems(source)]
    assert problems == [], "pass data through env={'NAME': '{{ params.x }}'} and use \"$NAME\":\n" + "\n".join(problems)
