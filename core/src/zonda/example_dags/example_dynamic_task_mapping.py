"""``example_dynamic_task_mapping``: one task, many instances, decided at run time."""

from __future__ import annotations

from datetime import datetime

from zonda import DAG, task
from zonda.operators import BashOperator

DOC_MD = """
# Dynamic task mapping

`.expand()` turns one task into as many instances as its input has elements (`map_index` 0, 1, ...),
decided when the run reaches it; downstream, the mapped task's output is the list of every instance's
value, in map-index order.

| task | shows | instances → values |
|---|---|---|
| `make_numbers` | a `@task` returning a list | `[1, 2, 3]` |
| `double` | `.expand(x=make_numbers())` | 3 → `[2, 4, 6]` |
| `multiply` | `.partial(factor=10).expand(x=...)`: constant and mapped arguments | 3 → `[10, 20, 30]` |
| `add` | `.expand_kwargs(make_pairs())`: one dict of arguments per instance | 2 → `[3, 7]` |
| `square` | mapping over a literal list, `.expand(x=[4, 5])` | 2 → `[16, 25]` |
| `echo_each` | `BashOperator.partial(task_id=...).expand(bash_command=[...])` | 2 → `["one", "two"]` |
| `total` | a reduce task: its arguments are the lists of mapped results | `123` |

An empty list maps to zero instances and the task ends **skipped**.
"""

with DAG(
    "example_dynamic_task_mapping",
    description="expand, partial().expand, expand_kwargs, literal lists, a mapped BashOperator and a reduce",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    doc_md=DOC_MD,
) as dag:

    @task
    def make_numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def make_pairs() -> list[dict[str, int]]:
        return [{"x": 1, "y": 2}, {"x": 3, "y": 4}]

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def multiply(x: int, factor: int) -> int:
        return x * factor

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def total(doubled: list[int], multiplied: list[int], added: list[int], squared: list[int]) -> int:
        """Reduce: every argument is the list of one mapped task's results."""
        return sum(doubled) + sum(multiplied) + sum(added) + sum(squared)

    numbers = make_numbers()
    doubled = double.expand(x=numbers)
    multiplied = multiply.partial(factor=10).expand(x=numbers)
    added = add.expand_kwargs(make_pairs())
    squared = square.expand(x=[4, 5])

    total(doubled, multiplied, added, squared)

    BashOperator.partial(task_id="echo_each").expand(bash_command=["echo one", "echo two"])
