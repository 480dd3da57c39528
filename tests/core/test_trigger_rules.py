"""Every trigger rule against a table of upstream-state combinations, with the outcomes Airflow produces.

The expected table is written out by hand from Airflow's documented semantics (not derived from Zonda's code),
then checked twice: against the rule evaluator directly, and end to end through real DAG runs.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from zonda import DAG
from zonda.exceptions import ZondaFailException, ZondaSkipException
from zonda.operators import EmptyOperator, PythonOperator
from zonda.runner.trigger_rules import Decision, UpstreamCounts, evaluate
from zonda.testing import run_dag
from zonda.trigger_rule import TriggerRule

RULES = [
    "all_success", "all_failed", "all_done", "all_done_min_one_success", "all_skipped", "one_success",
    "one_failed", "one_done", "none_failed", "none_failed_min_one_success", "none_skipped", "always",
]  # fmt: skip

R, SK, UF, W = "run", "skipped", "upstream_failed", "wait"

# upstream states -> outcome per rule, in the order of RULES.
TABLE: dict[tuple[str, ...], tuple[str, ...]] = {
    ("success", "success"): (R, SK, R, R, SK, R, SK, R, R, R, R, R),
    ("success", "failed"): (UF, SK, R, R, SK, R, R, R, UF, UF, R, R),
    ("failed", "failed"): (UF, R, R, UF, SK, UF, R, R, UF, UF, R, R),
    ("skipped", "skipped"): (SK, SK, R, SK, R, SK, SK, SK, R, SK, SK, R),
    ("success", "skipped"): (SK, SK, R, SK, SK, R, SK, R, R, R, SK, R),
    ("upstream_failed", "success"): (UF, SK, R, R, SK, R, R, R, UF, UF, R, R),
    ("failed", "skipped"): (UF, SK, R, SK, SK, UF, R, R, UF, UF, SK, R),
    ("success", "none"): (W, SK, W, W, SK, R, W, R, W, W, W, R),
    ("failed", "none"): (UF, W, W, W, SK, W, R, R, UF, UF, W, R),
    ("skipped", "none"): (SK, SK, W, SK, W, W, W, W, W, W, SK, R),
}

CASES = [(states, rule, TABLE[states][i]) for states in TABLE for i, rule in enumerate(RULES)]


@pytest.mark.parametrize(("states", "rule", "expected"), CASES, ids=[f"{'+'.join(s)}-{r}" for s, r, _ in CASES])
def test_rule_evaluation_table(states: tuple[str, ...], rule: str, expected: str) -> None:
    decision = evaluate(TriggerRule(rule), UpstreamCounts.from_states(states))
    assert decision == Decision(expected)


def test_no_upstream_always_runs() -> None:
    for rule in RULES:
        assert evaluate(TriggerRule(rule), UpstreamCounts(upstream=0)) is Decision.RUN


def test_old_rule_name_is_accepted() -> None:
    assert TriggerRule.parse("none_failed_or_skipped") is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def _succeed() -> None:
    return None


def _fail() -> None:
    raise ZondaFailException("failing on purpose")


def _skip() -> None:
    raise ZondaSkipException("skipping on purpose")


_MAKERS = {"success": _succeed, "failed": _fail, "skipped": _skip}
FINISHED = [states for states in TABLE if "none" not in states and "upstream_failed" not in states]


@pytest.mark.parametrize("states", FINISHED, ids=["+".join(s) for s in FINISHED])
def test_rules_end_to_end(states: tuple[str, ...], zonda_home: object) -> None:
    """A real run: upstream tasks end in ``states``; one downstream task per rule."""
    with DAG("tr_" + "_".join(states), start_date=datetime(2024, 1, 1)) as dag:
        ups = [PythonOperator(task_id=f"up{i}", python_callable=_MAKERS[s]) for i, s in enumerate(states)]
        for rule in RULES:
            ups >> EmptyOperator(task_id=f"rule_{rule}", trigger_rule=rule)
    result = run_dag(dag, "2024-01-01")
    got = result.states()
    for i, rule in enumerate(RULES):
        expected = TABLE[states][i]
        assert got[f"rule_{rule}"] == ("success" if expected == R else expected), rule


def test_upstream_failed_propagates_as_upstream_failed(zonda_home: object) -> None:
    with DAG("tr_propagate", start_date=datetime(2024, 1, 1)) as dag:
        a = PythonOperator(task_id="a", python_callable=_fail)
        b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
        d = EmptyOperator(task_id="d", trigger_rule="all_done")
        a >> b >> c >> d
    result = run_dag(dag)
    assert result.states() == {"a": "failed", "b": "upstream_failed", "c": "upstream_failed", "d": "success"}
    assert result.state == "success"  # the only leaf succeeded


def test_skip_propagates_through_all_success_chain(zonda_home: object) -> None:
    with DAG("tr_skip_chain", start_date=datetime(2024, 1, 1)) as dag:
        a = PythonOperator(task_id="a", python_callable=_skip)
        b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
        join = EmptyOperator(task_id="join", trigger_rule="none_failed")
        a >> b >> c >> join
    assert run_dag(dag).states() == {"a": "skipped", "b": "skipped", "c": "skipped", "join": "success"}
