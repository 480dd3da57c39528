"""``zonda dags port``: the libcst codemod on small inline sources, and the command on real files."""

from __future__ import annotations

import textwrap

import pytest

from zonda.cli import main
from zonda.porting.rewrite import port_source


def port(source: str):
    return port_source(textwrap.dedent(source))


def test_imports_from_every_airflow_home_move_to_zondas() -> None:
    result = port(
        """\
        # a comment stays
        from airflow import DAG
        from airflow.decorators import dag, task, task_group
        from airflow.models.dag import DAG as AirflowDAG
        from airflow.models import Variable, BaseOperator
        from airflow.operators.bash import BashOperator
        from airflow.operators.python import PythonOperator, get_current_context
        from airflow.providers.standard.operators.empty import EmptyOperator
        from airflow.providers.standard.sensors.python import PythonSensor
        from airflow.sdk import Param, chain, BaseSensorOperator
        from airflow.utils.trigger_rule import TriggerRule
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
        from airflow.providers.http.operators.http import SimpleHttpOperator
        from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchSQLHook
        """
    )
    assert result.problems == []
    assert result.source == textwrap.dedent(
        """\
        # a comment stays
        from zonda import DAG
        from zonda import dag, task, task_group
        from zonda import DAG as AirflowDAG
        from zonda import Variable
        from zonda.operators import BaseOperator
        from zonda.operators import BashOperator
        from zonda.operators import PythonOperator
        from zonda import get_current_context
        from zonda.operators import EmptyOperator
        from zonda.sensors import PythonSensor
        from zonda import Param, chain
        from zonda.sensors import BaseSensor
        from zonda.trigger_rule import TriggerRule
        from zonda_postgres.hooks import PostgresHook
        from zonda_postgres.operators import SQLExecuteQueryOperator
        from zonda_http.operators import HttpOperator
        from zonda_elasticsearch.hooks import ElasticsearchHook
        """
    )


def test_renamed_names_are_renamed_where_used_and_aliases_are_kept() -> None:
    result = port(
        """\
        from airflow.exceptions import AirflowSkipException, AirflowFailException as Fail
        from airflow.sdk import BaseSensorOperator


        class Waiter(BaseSensorOperator):
            def poke(self, context):
                raise AirflowSkipException("nothing today")  # AirflowSkipException in a comment stays


        def check():
            raise Fail("bad")
        """
    )
    assert result.problems == []
    assert "from zonda.exceptions import ZondaSkipException, ZondaFailException as Fail" in result.source
    assert "class Waiter(BaseSensor):" in result.source
    assert 'raise ZondaSkipException("nothing today")  # AirflowSkipException in a comment stays' in result.source
    assert 'raise Fail("bad")' in result.source


def test_what_cannot_be_ported_stays_and_is_reported_by_line() -> None:
    result = port(
        """\
        import pendulum
        from airflow.sdk import DAG, Asset
        import airflow.utils.dates
        from airflow.operators.python import *
        from airflow.sdk import SomethingNew
        """
    )
    assert result.problems == [
        (2, "airflow.sdk.Asset: assets (data-aware scheduling) have no Zonda counterpart yet"),
        (3, "import airflow.utils.dates: attribute access on Airflow modules is not ported; import the names"),
        (4, "from airflow.operators.python import *: name the imports, then port again"),
        (5, "airflow.sdk.SomethingNew: no Zonda counterpart known; port this by hand"),
    ]
    lines = result.source.splitlines()
    assert lines[1:3] == ["from zonda import DAG", "from airflow.sdk import Asset"]
    assert "import airflow.utils.dates" in lines


def test_non_airflow_code_is_left_byte_for_byte() -> None:
    source = "from datetime import datetime  # odd   spacing\nx = {'a':1}\n"
    result = port(source)
    assert result.source == source and not result.changed and result.problems == []


def test_a_syntax_error_is_a_problem_with_its_line() -> None:
    result = port("from airflow import DAG\ndef broken(:\n")
    assert not result.changed
    assert result.problems[0][0] == 2 and result.problems[0][1].startswith("not valid Python")


def test_the_ported_file_runs_in_zonda(tmp_path, zonda_home) -> None:
    dag_file = tmp_path / "dags" / "legacy.py"
    dag_file.parent.mkdir()
    dag_file.write_text(
        textwrap.dedent(
            """\
            from datetime import datetime
            from airflow.sdk import DAG, task
            from airflow.exceptions import AirflowSkipException
            from airflow.providers.standard.operators.bash import BashOperator

            with DAG("legacy", start_date=datetime(2024, 1, 1), schedule=None) as dag:
                @task
                def maybe():
                    raise AirflowSkipException("not today")

                maybe() >> BashOperator(task_id="after", bash_command="echo hi", trigger_rule="none_failed")
            """
        )
    )
    out = tmp_path / "ported"
    assert main(["dags", "port", str(dag_file.parent), "--out", str(out)]) == 0
    from zonda.dagbag import DagBag
    from zonda.testing import run_dag

    bag = DagBag(out / "dags")
    bag.process_file(out / "dags" / "legacy.py")
    assert bag.import_errors == {}
    assert run_dag(bag.dags["legacy"]).states() == {"maybe": "skipped", "after": "success"}


def test_command_dry_run_in_place_and_report(tmp_path, capsys) -> None:
    dag_file = tmp_path / "a.py"
    original = "from airflow.sdk import DAG, Asset\n"
    dag_file.write_text(original)
    assert main(["dags", "port", str(dag_file)]) == 1
    captured = capsys.readouterr()
    assert dag_file.read_text() == original
    assert f"{dag_file}:1: airflow.sdk.Asset: assets" in captured.err
    assert "1 file(s), 1 would change, 1 thing(s) left to port by hand (dry run: nothing written)" in captured.out
    assert main(["dags", "port", str(dag_file), "--in-place"]) == 1
    assert dag_file.read_text() == "from zonda import DAG\nfrom airflow.sdk import Asset\n"


def test_command_refuses_a_missing_path(tmp_path, capsys) -> None:
    assert main(["dags", "port", str(tmp_path / "nope.py")]) != 0
    assert "no such file or folder; pass DAG files or folders holding them" in capsys.readouterr().err


def test_out_and_in_place_exclude_each_other(tmp_path) -> None:
    with pytest.raises(SystemExit):
        main(["dags", "port", str(tmp_path), "--out", str(tmp_path / "o"), "--in-place"])


def test_without_libcst_the_command_says_which_extra_to_install(tmp_path, monkeypatch, capsys) -> None:
    import sys

    for name in [m for m in sys.modules if m == "libcst" or m.startswith(("libcst.", "zonda.porting.rewrite"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "libcst", None)
    (tmp_path / "a.py").write_text("from airflow import DAG\n")
    assert main(["dags", "port", str(tmp_path / "a.py")]) != 0
    assert "needs libcst, which is not installed; install it with: pip install 'zonda[port]'" in capsys.readouterr().err
