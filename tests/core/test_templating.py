"""zonda.templating: sandboxed, strict Jinja rendering of template fields."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from zonda.context import build_context
from zonda.exceptions import TemplateRenderError
from zonda.templating import DEFAULT_TEMPLATE_EXT, TemplateRenderer, renderer_for_dag


@pytest.fixture
def dag_folder(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "etl.py").write_text("# a DAG file\n")
    return folder


@pytest.fixture
def context():
    run = SimpleNamespace(
        run_id="scheduled__2024-01-02",
        logical_date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        data_interval_start=datetime(2024, 1, 2, tzinfo=UTC),
        data_interval_end=datetime(2024, 1, 3, tzinfo=UTC),
        conf={},
    )
    return build_context(dag=None, task=None, dag_run=run, ti=None, params={"table": "users", "n": 3})


class Operator:
    def __init__(self, task_id, **fields):
        self.task_id = task_id
        self.dag = SimpleNamespace(dag_id="etl")
        for name, value in fields.items():
            setattr(self, name, value)


def test_renders_context_names_and_macros(dag_folder, context):
    renderer = TemplateRenderer([dag_folder])
    text = "echo {{ ds }} {{ ds_nodash }} {{ params.table }} {{ macros.ds_add(ds, 5) }} {{ run_id }}"
    assert renderer.render(text, context) == "echo 2024-01-02 20240102 users 2024-01-07 scheduled__2024-01-02"


def test_plain_strings_never_reach_jinja(context):
    renderer = TemplateRenderer([])
    assert renderer.render("no templates here } { %", context) == "no templates here } { %"
    assert renderer._env is None  # environment not even built
    assert renderer.render("a {{ ds }}", context) == "a 2024-01-02"
    assert renderer._env is not None


def test_compiled_templates_are_cached(context):
    renderer = TemplateRenderer([])
    for _ in range(3):
        renderer.render("{{ ds }}", context)
    assert list(renderer._compiled) == ["{{ ds }}"]


def test_comments_and_statements_are_templates(context):
    renderer = TemplateRenderer([])
    assert renderer.render("a{# note #}b", context) == "ab"
    assert renderer.render("{% for i in range(params.n) %}{{ i }}{% endfor %}", context) == "012"


def test_trailing_newline_kept_and_no_autoescape(context):
    renderer = TemplateRenderer([])
    assert renderer.render("<b>{{ params.table }}</b> & 'x'\n", context) == "<b>users</b> & 'x'\n"


def test_renders_nested_containers_keeping_types(context):
    renderer = TemplateRenderer([])
    Point = namedtuple("Point", "x y")
    value = {
        "{{ ds }}": ["{{ ds }}", ("{{ params.n }}", 1), {"{{ ds_nodash }}"}],
        "point": Point("{{ ds }}", None),
        "n": 7,
    }
    rendered = renderer.render(value, context)
    assert rendered == {
        "{{ ds }}": ["2024-01-02", ("3", 1), {"20240102"}],  # dict keys are not rendered, as in Airflow
        "point": Point("2024-01-02", None),
        "n": 7,
    }
    assert type(rendered["point"]) is Point
    assert value["point"].x == "{{ ds }}"  # the input is not modified


def test_objects_with_template_fields_are_rendered_in_place(context):
    class Query:
        template_fields = ("sql", "name")

        def __init__(self):
            self.sql = "select * from {{ params.table }}"
            self.name = "q_{{ ds_nodash }}"
            self.other = "{{ untouched }}"
            self.me = self  # cycles are fine

    query = Query()
    renderer = TemplateRenderer([])
    result = renderer.render({"q": [query]}, context)
    assert result["q"][0] is query
    assert query.sql == "select * from users"
    assert query.name == "q_20240102"
    assert query.other == "{{ untouched }}"


def test_sandbox_refuses_class_escape(context):
    renderer = TemplateRenderer([])
    with pytest.raises(TemplateRenderError) as info:
        renderer.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", context)
    message = str(info.value)
    assert "sandbox" in message
    assert "__class__" in message


@pytest.mark.parametrize(
    "template",
    ["{{ ''.__class__ }}", "{{ params.__class__.__init__.__globals__ }}", "{{ macros.json.__dict__ }}"],
)
def test_sandbox_refuses_private_attributes(context, template):
    with pytest.raises(TemplateRenderError, match="sandbox refused"):
        TemplateRenderer([]).render(template, context)


def test_undefined_variable_is_an_error_naming_it(context):
    operator = Operator("extract", bash_command="echo {{ dss }}")
    with pytest.raises(TemplateRenderError) as info:
        TemplateRenderer([]).render_fields(operator, ["bash_command"], context)
    message = str(info.value)
    assert "'dss' is undefined" in message
    assert "'bash_command'" in message
    assert "etl.extract" in message
    assert "echo {{ dss }}" in message
    assert "ds_nodash" in message  # lists what is available


def test_undefined_attribute_is_an_error(context):
    with pytest.raises(TemplateRenderError, match="no attribute 'missing'"):
        TemplateRenderer([]).render("{{ params.missing }}", context)


def test_syntax_error_gives_line(context):
    with pytest.raises(TemplateRenderError, match="syntax error on line 2"):
        TemplateRenderer([]).render("ok\n{% if %}\n", context)


def test_runtime_error_gives_type_and_line(context):
    with pytest.raises(TemplateRenderError, match="ZeroDivisionError on line 3"):
        TemplateRenderer([]).render("a\nb\n{{ 1 / 0 }}", context)


def test_error_path_inside_a_field(context):
    operator = Operator("load", op_kwargs={"a": "fine", "b": ["{{ nope }}"]})
    with pytest.raises(TemplateRenderError) as info:
        TemplateRenderer([]).render_fields(operator, ["op_kwargs"], context)
    assert "op_kwargs['b'][0]" in str(info.value)


def test_long_templates_are_shortened_in_errors(context):
    template = "{{ nope }}" + "x" * 500
    with pytest.raises(TemplateRenderError) as info:
        TemplateRenderer([]).render(template, context)
    assert "x" * 200 not in str(info.value)
    assert "..." in str(info.value)


def test_sql_file_next_to_the_dag_file(dag_folder, context):
    (dag_folder / "sql").mkdir()
    (dag_folder / "sql" / "load.sql").write_text("SELECT * FROM {{ params.table }} WHERE ds = '{{ ds }}';\n")
    operator = Operator("load", sql="sql/load.sql", name="job_{{ ds_nodash }}")
    operator.template_ext = (".sql",)
    rendered = TemplateRenderer([dag_folder]).render_fields(operator, ["sql", "name"], context)
    assert rendered == {
        "sql": "SELECT * FROM users WHERE ds = '2024-01-02';\n",
        "name": "job_20240102",
    }
    assert operator.sql == rendered["sql"]
    assert operator.name == "job_20240102"


def test_template_file_in_second_search_folder_and_list_of_files(dag_folder, tmp_path, context):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.sql").write_text("A {{ ds }}")
    (dag_folder / "b.sql").write_text("B {{ params.n }}")
    operator = Operator("t", sql=["a.sql", "b.sql"], template_ext=(".sql",))
    TemplateRenderer([dag_folder, shared]).render_fields(operator, ["sql"], context)
    assert operator.sql == ["A 2024-01-02", "B 3"]


def test_missing_template_file_lists_searched_folders(dag_folder, context):
    operator = Operator("t", bash_command="run.sh", template_ext=(".sh",))
    with pytest.raises(TemplateRenderError) as info:
        TemplateRenderer([dag_folder, "/opt/shared"]).render_fields(operator, ["bash_command"], context)
    message = str(info.value)
    assert "'run.sh'" in message
    assert str(dag_folder) in message
    assert "/opt/shared" in message
    assert "end it with a space" in message


def test_trailing_space_means_not_a_file(dag_folder, context):
    operator = Operator("t", bash_command="run.sh ", template_ext=(".sh",))
    TemplateRenderer([dag_folder]).render_fields(operator, ["bash_command"], context)
    assert operator.bash_command == "run.sh "


def test_template_ext_defaults(dag_folder, context):
    (dag_folder / "x.sql").write_text("{{ ds }}")
    no_ext = Operator("t", sql="x.sql")  # declares no template_ext: the defaults apply
    TemplateRenderer([dag_folder]).render_fields(no_ext, ["sql"], context)
    assert no_ext.sql == "2024-01-02"
    assert ".sql" in DEFAULT_TEMPLATE_EXT
    none_ext = Operator("t", path="x.sql", template_ext=())  # like PythonOperator: strings are strings
    TemplateRenderer([dag_folder]).render_fields(none_ext, ["path"], context)
    assert none_ext.path == "x.sql"


def test_absolute_template_path(tmp_path, context):
    script = tmp_path / "abs.sh"
    script.write_text("echo {{ ds }}\n")
    operator = Operator("t", bash_command=str(script), template_ext=(".sh",))
    TemplateRenderer([]).render_fields(operator, ["bash_command"], context)
    assert operator.bash_command == "echo 2024-01-02\n"


def test_error_in_template_file_names_the_file(dag_folder, context):
    (dag_folder / "bad.sql").write_text("select {{ missing_name }}")
    operator = Operator("t", sql="bad.sql", template_ext=(".sql",))
    with pytest.raises(TemplateRenderError) as info:
        TemplateRenderer([dag_folder]).render_fields(operator, ["sql"], context)
    assert "'missing_name' is undefined" in str(info.value)
    assert "bad.sql" in str(info.value)


def test_missing_attribute_in_template_fields(context):
    with pytest.raises(TemplateRenderError, match="no attribute 'nope'"):
        TemplateRenderer([]).render_fields(Operator("t"), ["nope"], context)


def test_render_fields_returns_non_string_values(context):
    operator = Operator("t", env={"DS": "{{ ds }}"}, retries=None)
    assert TemplateRenderer([]).render_fields(operator, ["env", "retries"], context) == {
        "env": {"DS": "2024-01-02"},
        "retries": None,
    }


def test_user_defined_macros_and_filters(context):
    renderer = TemplateRenderer(
        [],
        user_defined_macros={"project": "acme", "shout": lambda s: s.upper()},
        user_defined_filters={"reverse_words": lambda s: " ".join(reversed(s.split()))},
    )
    assert renderer.render("{{ project }} {{ shout(ds) }} {{ 'a b c' | reverse_words }}", context) == (
        "acme 2024-01-02 c b a"
    )


def test_plugin_macros_join_the_macros_namespace(context):
    renderer = TemplateRenderer([], macros={"my_plugin": SimpleNamespace(hello=lambda: "hi"), "twice": lambda x: x * 2})
    assert renderer.render(
        "{{ macros.my_plugin.hello() }} {{ macros.twice(2) }} {{ macros.ds_add(ds, 1) }}", context
    ) == ("hi 4 2024-01-03")
    assert not hasattr(context["macros"], "twice")  # the context's namespace is left alone
    # a context without macros gets the renderer's own
    assert renderer.render("{{ macros.twice(3) }}", {}) == "6"


def test_native_mode_returns_python_objects(context):
    renderer = TemplateRenderer([], native=True)
    assert renderer.render("{{ [params.n, params.n * 2] }}", context) == [3, 6]
    assert renderer.render("{{ params.n }}", context) == 3
    assert renderer.render("{{ ds }}", context) == "2024-01-02"
    with pytest.raises(TemplateRenderError, match="sandbox"):
        renderer.render("{{ ''.__class__ }}", context)


def test_renderer_for_dag_uses_dag_settings_and_is_cached(dag_folder, context):
    class FakeDag:
        user_defined_macros = {"team": "data"}
        user_defined_filters = {}
        render_template_as_native_obj = False

        def template_folders(self):
            return [str(dag_folder)]

    dag = FakeDag()
    renderer = renderer_for_dag(dag)
    assert renderer is renderer_for_dag(dag)
    assert renderer.searchpath == [str(dag_folder)]
    assert renderer.render("{{ team }}", context) == "data"


def test_native_mode_is_strict_too(context):
    with pytest.raises(TemplateRenderError, match="'nope' is undefined"):
        TemplateRenderer([], native=True).render("{{ nope }}", context)
