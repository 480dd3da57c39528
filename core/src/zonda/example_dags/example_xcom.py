"""``example_xcom``: passing data between tasks with XCom, the classic way and the TaskFlow way."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from zonda import DAG, task
from zonda.operators import BashOperator, PythonOperator

DOC_MD = """
# XCom

XComs ("cross-communications") are small values a task shares with later tasks of the same run. Values are
stored as JSON in the metastore; the Python types JSON lacks (`datetime`, `Decimal`, `tuple`, `set`,
`bytes`, ...) are tagged and come back as the same type.

| task | shows |
|---|---|
| `push_by_hand` | `ti.xcom_push(key=..., value=...)` under custom keys, and a return value (`return_value`) |
| `pull_by_hand` | `ti.xcom_pull(task_ids=..., key=...)`, one task id or a list of them |
| `make_order` | `@task(multiple_outputs=True)`: each dict key becomes its own XCom |
| `check_types` | receives `order["amount"]` etc. as arguments: a `Decimal`, a `datetime`, a `tuple` round-trip |
| `bash_pull` | a `BashOperator` reading an XCom in Jinja: `{{ ti.xcom_pull(task_ids='push_by_hand', key='model') }}` |
| `summarize` | TaskFlow return values wired as arguments (`XComArg`s), which also set the dependencies |

Keep XComs small (ids, paths, counts): the limit is `[xcom] max_size`, 1 MiB by default.
"""


def _push_by_hand(ti: Any) -> list[int]:
    ti.xcom_push(key="model", value="churn-v2")
    ti.xcom_push(key="thresholds", value={"low": 0.2, "high": 0.8})
    return [3, 1, 4]  # pushed under the key "return_value"


def _pull_by_hand(ti: Any) -> dict[str, Any]:
    model = ti.xcom_pull(task_ids="push_by_hand", key="model")
    thresholds = ti.xcom_pull(task_ids="push_by_hand", key="thresholds")
    numbers = ti.xcom_pull(task_ids="push_by_hand")  # key defaults to "return_value"
    both = ti.xcom_pull(task_ids=["push_by_hand", "make_order"], key="order_id")  # a list, one per task id
    return {"model": model, "high": thresholds["high"], "total": sum(numbers), "order_ids": both}


with DAG(
    "example_xcom",
    description="ti.xcom_push / xcom_pull, TaskFlow return values, multiple_outputs and typed values",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    doc_md=DOC_MD,
) as dag:
    push_by_hand = PythonOperator(task_id="push_by_hand", python_callable=_push_by_hand)

    @task(multiple_outputs=True)
    def make_order() -> dict[str, Any]:
        """Each key of the returned dict becomes an XCom of its own (and the whole dict, `return_value`)."""
        return {
            "order_id": 1042,
            "amount": Decimal("19.99"),
            "placed_at": datetime(2024, 1, 2, 9, 30, tzinfo=UTC),
            "dimensions": (20, 30, 5),
        }

    @task
    def check_types(amount: Decimal, placed_at: datetime, dimensions: tuple[int, ...]) -> dict[str, Any]:
        """The values arrive with their Python types, not as strings."""
        assert isinstance(amount, Decimal), type(amount)
        assert isinstance(placed_at, datetime) and placed_at.tzinfo is not None, placed_at
        assert isinstance(dimensions, tuple), type(dimensions)
        volume = dimensions[0] * dimensions[1] * dimensions[2]
        return {"amount_with_tax": amount * Decimal("1.21"), "weekday": placed_at.strftime("%A"), "volume": volume}

    @task
    def summarize(checked: dict[str, Any], pulled: dict[str, Any], echoed: str) -> str:
        return f"{pulled['model']} order volume={checked['volume']} tax={checked['amount_with_tax']} echo={echoed}"

    order = make_order()
    checked = check_types(order["amount"], order["placed_at"], order["dimensions"])

    pull_by_hand = PythonOperator(task_id="pull_by_hand", python_callable=_pull_by_hand)

    bash_pull = BashOperator(
        task_id="bash_pull",
        # The pulled value reaches the shell as an environment variable, never as part of the script's text.
        bash_command='echo "model=$MODEL"',
        env={"MODEL": "{{ ti.xcom_pull(task_ids='push_by_hand', key='model') }}"},
        append_env=True,
    )

    [push_by_hand, order] >> pull_by_hand
    push_by_hand >> bash_pull
    summarize(checked, pull_by_hand.output, bash_pull.output)
