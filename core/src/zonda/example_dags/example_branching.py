"""``example_branching``: choosing paths at run time with branches and short-circuits, joined back together."""

from __future__ import annotations

from datetime import datetime

from zonda import DAG, TaskGroup, task
from zonda.operators import BranchPythonOperator, EmptyOperator, ShortCircuitOperator
from zonda.trigger_rule import TriggerRule

DOC_MD = """
# Branching

- `pick_by_weekday` (`BranchPythonOperator`) follows `weekday` or `weekend` from the run's logical date;
  the branch not taken is **skipped**.
- `join` uses `trigger_rule="none_failed_min_one_success"`, the rule for a join after a branch: with the
  default `all_success` the skipped branch would skip the join too.
- `@task.branch` `pick_size` may return a **task group id**: following a group follows its first tasks.
  Here it picks the `small` group; the `large` group is skipped.
- `ShortCircuitOperator` `is_first_of_month` returns false for most days. It sets
  `ignore_downstream_trigger_rules=False`, so only its direct downstream task (`monthly_report`) is skipped
  and `end` still decides by its own trigger rule. With the default (`True`) *every* task downstream,
  `end` included, would be skipped. `has_data` returns true, so `daily_report` runs.
- `end` joins everything with `none_failed_min_one_success`.

With logical date 2024-01-02 (a Tuesday): `weekday` runs, `weekend` is skipped, `small.*` runs,
`large.*` is skipped, `monthly_report` is skipped, `daily_report` runs, and the run succeeds.
"""


def _pick_by_weekday(logical_date: datetime) -> str:
    return "weekend" if logical_date.weekday() >= 5 else "weekday"


with DAG(
    "example_branching",
    description="BranchPythonOperator, @task.branch, ShortCircuitOperator, a none_failed_min_one_success join",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    doc_md=DOC_MD,
) as dag:
    start = EmptyOperator(task_id="start")

    pick_by_weekday = BranchPythonOperator(task_id="pick_by_weekday", python_callable=_pick_by_weekday)
    weekday = EmptyOperator(task_id="weekday")
    weekend = EmptyOperator(task_id="weekend")
    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    start >> pick_by_weekday >> [weekday, weekend] >> join

    @task.branch
    def pick_size() -> str:
        rows = 120  # e.g. a row count pulled from an upstream task
        return "small" if rows < 1000 else "large"

    with TaskGroup("small", tooltip="a small load: one step") as small:
        EmptyOperator(task_id="load") >> EmptyOperator(task_id="check")
    with TaskGroup("large", tooltip="a large load: staged") as large:
        EmptyOperator(task_id="stage") >> EmptyOperator(task_id="load")

    sized = pick_size()
    join >> sized >> [small, large]

    is_first_of_month = ShortCircuitOperator(
        task_id="is_first_of_month",
        python_callable=lambda logical_date: logical_date.day == 1,
        ignore_downstream_trigger_rules=False,
    )
    has_data = ShortCircuitOperator(task_id="has_data", python_callable=lambda: True)
    monthly_report = EmptyOperator(task_id="monthly_report")
    daily_report = EmptyOperator(task_id="daily_report")
    start >> is_first_of_month >> monthly_report
    start >> has_data >> daily_report

    end = EmptyOperator(task_id="end", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    [small, large, monthly_report, daily_report] >> end
