"""``example_trigger_rules``: every trigger rule, side by side, against four mixes of upstream states.

Three source tasks end in the three finished states a task can reach on its own: ``succeeds`` (success),
``fails`` (failed, via :class:`~zonda.exceptions.ZondaFailException`, so no retry) and ``skips`` (skipped,
via :class:`~zonda.exceptions.ZondaSkipException`). Each task group below puts one task per trigger rule
downstream of a different mix of them; after a run, the grid of states *is* the trigger-rule table.
"""

from __future__ import annotations

from datetime import datetime

from zonda import DAG, TaskGroup
from zonda.exceptions import ZondaFailException, ZondaSkipException
from zonda.operators import EmptyOperator, PythonOperator
from zonda.trigger_rule import TriggerRule


def _fail() -> None:
    raise ZondaFailException("failing on purpose to show the trigger rules (ZondaFailException: no retries)")


def _skip() -> None:
    raise ZondaSkipException("skipping on purpose to show the trigger rules")


#: Which sources feed each group: group id -> source task ids.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "mixed": ("succeeds", "fails", "skips"),
    "success_and_skip": ("succeeds", "skips"),
    "failed_only": ("fails",),
    "skipped_only": ("skips",),
}

DOC_MD = """
# Trigger rules

A task's `trigger_rule` decides, from its upstream tasks' states, whether it runs, waits, or is settled
without running (`skipped` or `upstream_failed`). Three sources reach the three basic outcomes:
`succeeds` → **success**, `fails` → **failed** (it raises `ZondaFailException`, so retries are not used),
`skips` → **skipped** (it raises `ZondaSkipException`). Each group puts one task per rule downstream of a
different mix of sources. The final states, exactly as Airflow produces them:

| rule | `mixed` (success, failed, skipped) | `success_and_skip` | `failed_only` | `skipped_only` |
|---|---|---|---|---|
| `all_success` (default) | upstream_failed | skipped | upstream_failed | skipped |
| `all_failed` | skipped | skipped | **success** | skipped |
| `all_done` | **success** | **success** | **success** | **success** |
| `all_done_min_one_success` | skipped | skipped | upstream_failed | skipped |
| `all_done_setup_success` | **success** | **success** | **success** | **success** |
| `all_skipped` | skipped | skipped | skipped | **success** |
| `one_success` | **success** | **success** | upstream_failed | skipped |
| `one_failed` | **success** | skipped | **success** | skipped |
| `one_done` | **success** | **success** | **success** | skipped |
| `none_failed` | upstream_failed | **success** | upstream_failed | **success** |
| `none_failed_min_one_success` | upstream_failed | **success** | upstream_failed | skipped |
| `none_skipped` | skipped | skipped | **success** | skipped |
| `always` | **success** | **success** | **success** | **success** |

The sources end in the order above (`succeeds`, `fails`, `skips`: their `priority_weight`). Order matters
where a rule can settle before every upstream ended: `all_success` below a skip that ends before a failure
is `skipped`, as in Airflow.

Reading the table: a failure upstream turns the "all must succeed" family into `upstream_failed`, a skip
turns it into `skipped` (that is how a branch's skip propagates); `none_failed_min_one_success` is the rule
for a join after a branch; `all_done` and `always` are for clean-up tasks; for
`all_done_min_one_success` a skipped upstream does not count as done, so any skip skips it.
`all_done_setup_success` is a teardown's rule (`as_teardown()` sets it): with no setup upstream, as here, it is
`all_done`; below setups it also needs one of them to have succeeded.

**This DAG run ends `failed`, on purpose**: several leaves end `upstream_failed`, and a run whose leaves
include a failed or upstream-failed task is failed, in Zonda as in Airflow. Nothing is wrong with it.
"""

with DAG(
    "example_trigger_rules",
    description="Every trigger rule against four mixes of upstream states (the run ends failed on purpose)",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    doc_md=DOC_MD,
) as dag:
    # The sources end in this order (highest priority_weight first, in `dags test` and the scheduler alike):
    # a rule that settles as soon as it can (all_success below both a failure and a skip) depends on which
    # upstream ended first, in Airflow too.
    sources = {
        "succeeds": EmptyOperator(task_id="succeeds", priority_weight=3, weight_rule="absolute"),
        "fails": PythonOperator(
            task_id="fails", python_callable=_fail, retries=3, priority_weight=2, weight_rule="absolute"
        ),
        "skips": PythonOperator(task_id="skips", python_callable=_skip, priority_weight=1, weight_rule="absolute"),
    }
    for group_id, upstream_ids in SCENARIOS.items():
        with TaskGroup(group_id, tooltip=f"downstream of {', '.join(upstream_ids)}") as group:
            for rule in TriggerRule:
                EmptyOperator(task_id=rule.value, trigger_rule=rule)
        [sources[task_id] for task_id in upstream_ids] >> group
