"""``BashOperator`` and ``@task.bash`` features Airflow DAGs use, run as ``zonda dags test`` runs them.

What Airflow 3.3's standard provider documents (``BashOperator`` / ``@task.bash``): ``output_processor`` turns
the last stdout line into the XCom, ``multiple_outputs`` then pushes each key of a dict; a ``@task.bash`` function
gets context values by parameter name (``def f(ds=None, ti=None)``); ``env`` replaces the environment unless
``append_env=True`` (``None`` inherits it), ``cwd`` sets the working folder (``None``: a temporary one); exit
code 99 skips the task (``skip_on_exit_code``), and its downstream ``all_success`` task with it.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from zonda import DAG, task
from zonda.operators import BashOperator, EmptyOperator
from zonda.testing import run_dag

DATE = "2024-01-01"


def _xcom(result: Any, task_id: str, key: str = "return_value") -> Any:
    return result.ti(task_id).xcom_pull(task_ids=task_id, key=key)


def test_task_bash_gets_context_values_by_parameter_name(zonda_home: Path) -> None:
    with DAG("bash_context", schedule=None) as dag:

        @task.bash
        def echo_context(word: str, ds: Any = None, ti: Any = None, params: Any = None) -> str:
            return f"echo {word} {ds} {ti.task_id} {params['who']}"

        echo_context("hello")
    dag.params.update({"who": "me"})
    result = run_dag(dag, DATE)
    assert result.states() == {"echo_context": "success"}
    assert _xcom(result, "echo_context") == "hello 2024-01-01 echo_context me"


@pytest.mark.parametrize("decorated", [False, True], ids=["BashOperator", "task.bash"])
def test_output_processor_and_multiple_outputs(zonda_home: Path, decorated: bool) -> None:
    command = """echo 'noise'; echo '{"rows": 3, "table": "t1"}'"""
    with DAG("bash_outputs", schedule=None) as dag:
        if decorated:

            @task.bash(output_processor=json.loads, multiple_outputs=True)
            def produce() -> str:
                return command

            produce()
        else:
            BashOperator(task_id="produce", bash_command=command, output_processor=json.loads, multiple_outputs=True)
        BashOperator(task_id="plain", bash_command="echo ' 42 '", output_processor=int)
    result = run_dag(dag, DATE)
    assert result.states() == {"produce": "success", "plain": "success"}
    assert _xcom(result, "produce") == {"rows": 3, "table": "t1"}
    assert (_xcom(result, "produce", "rows"), _xcom(result, "produce", "table")) == (3, "t1")
    assert _xcom(result, "plain") == 42


def test_multiple_outputs_without_a_dict_fails_with_a_clear_message(zonda_home: Path) -> None:
    with DAG("bash_not_a_dict", schedule=None) as dag:
        BashOperator(task_id="produce", bash_command="echo plain", multiple_outputs=True)
    result = run_dag(dag, DATE)
    assert result.states() == {"produce": "failed"}


@pytest.mark.parametrize("decorated", [False, True], ids=["BashOperator", "task.bash"])
def test_exit_code_99_skips_the_task_and_its_downstream(zonda_home: Path, decorated: bool) -> None:
    with DAG("bash_skip", schedule=None) as dag:
        if decorated:

            @task.bash
            def maybe() -> str:
                return "echo checking; exit 99"

            first = maybe()
        else:
            first = BashOperator(task_id="maybe", bash_command="echo checking; exit 99")
        custom = BashOperator(task_id="custom", bash_command="exit 3", skip_on_exit_code=[3])
        first >> EmptyOperator(task_id="after")
        custom >> EmptyOperator(task_id="after_custom", trigger_rule="none_failed")
    result = run_dag(dag, DATE)
    # all_success below a skip is skipped; none_failed runs (a skip is not a failure).
    assert result.states() == {"maybe": "skipped", "custom": "skipped", "after": "skipped", "after_custom": "success"}
    assert result.state == "success"


#: (env, append_env, cwd) -> what the command sees, by Airflow's rules: env None inherits the worker's
#: environment whatever append_env says; a mapping replaces it, or adds to it with append_env=True.
ENVS = {"inherit": None, "mine": {"MINE": "m"}}
COMBINATIONS = list(itertools.product(("operator", "decorator"), ENVS, (False, True), ("temporary", "given")))


@pytest.mark.parametrize(("kind", "env_name", "append_env", "cwd_kind"), COMBINATIONS)
def test_env_append_env_and_cwd_in_every_combination(
    zonda_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    env_name: str,
    append_env: bool,
    cwd_kind: str,
) -> None:
    monkeypatch.setenv("OUTER", "o")
    workdir = tmp_path / "work"
    workdir.mkdir()
    cwd = str(workdir) if cwd_kind == "given" else None
    command = 'echo "MINE=${MINE:-} OUTER=${OUTER:-} DAG=${ZONDA_CTX_DAG_ID:-} PWD=$(pwd)"'
    options = {"env": ENVS[env_name], "append_env": append_env, "cwd": cwd}
    with DAG("bash_env", schedule=None) as dag:
        if kind == "decorator":

            @task.bash(**options)
            def show() -> str:
                return command

            show()
        else:
            BashOperator(task_id="show", bash_command=command, **options)
    result = run_dag(dag, DATE)
    assert result.states() == {"show": "success"}
    seen = dict(part.split("=", 1) for part in _xcom(result, "show").split(" "))
    expect_mine = "m" if env_name == "mine" else ""
    expect_outer = "o" if env_name == "inherit" or append_env else ""
    assert (seen["MINE"], seen["OUTER"], seen["DAG"]) == (expect_mine, expect_outer, "bash_env")
    if cwd is not None:
        assert seen["PWD"] == os.path.realpath(cwd)
    else:  # a fresh temporary folder, removed when the command ended
        assert seen["PWD"] != os.path.realpath(workdir) and not os.path.exists(seen["PWD"])
