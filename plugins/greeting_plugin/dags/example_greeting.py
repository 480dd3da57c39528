"""Uses the greeting plugin: its operator (imported from the plugins folder) and its template macro."""

from __future__ import annotations

from datetime import datetime

from greeting import GreetingOperator

from zonda import DAG
from zonda.operators import BashOperator

with DAG(
    "example_greeting",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"who": "data engineers"},
    tags=["example", "plugin"],
    doc_md="Greets with a custom operator and a plugin macro. Needs `greeting.py` in `$ZONDA_HOME/plugins/`.",
):
    hello = GreetingOperator(task_id="hello", name="{{ params.who }}")
    # Params are data: they reach the shell through env, never pasted into the command's text.
    echo = BashOperator(
        task_id="echo_macro",
        bash_command='echo "$GREETING"',
        env={"GREETING": '{{ macros.greet(params.who, "?") }}'},
        append_env=True,
    )
    hello >> echo
