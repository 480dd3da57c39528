"""A whole installation for the browser tests that need a real scheduler: ``zonda standalone --port 0`` in a child
process on a temporary home, with the example DAGs off and a small DAG folder of its own.

The DAGs are quick on purpose: ``browser_fails`` (``prepare >> boom``, boom exits 1 with no retry) and
``browser_chain`` (``a >> b >> c`` and ``a >> side``; b sleeps longest and side ends before it, so the critical
path is a → b → c and ``side`` lies beside it), and ``browser_grid`` (``extract >> transform.[clean, join] >> load``
with the integer param ``rows``; a negative ``rows`` fails ``load``). Runs are triggered through the operations layer, as ``zonda dags trigger`` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standalone_process import read_banner, start_standalone, stop_standalone

#: Longest wait for the DAG processor to store a DAG, or a run to end (tasks are processes on a busy machine).
RUN_TIMEOUT_SECONDS = 180
POLL_SECONDS = 0.25
FAILING_DAG = "browser_fails"
CHAIN_DAG = "browser_chain"
GRID_DAG = "browser_grid"
FAILURE_LINE = "boom: the input file is missing"

DAG_FILES = {
    f"{FAILING_DAG}.py": f'''
from datetime import datetime

from zonda import DAG
from zonda.operators import BashOperator

with DAG("{FAILING_DAG}", schedule=None, start_date=datetime(2024, 1, 1)):
    prepare = BashOperator(task_id="prepare", bash_command="echo preparing")
    boom = BashOperator(task_id="boom", bash_command="echo '{FAILURE_LINE}'; exit 1", retries=0)
    prepare >> boom
''',
    f"{CHAIN_DAG}.py": f'''
from datetime import datetime

from zonda import DAG
from zonda.operators import BashOperator

with DAG("{CHAIN_DAG}", schedule=None, start_date=datetime(2024, 1, 1)):
    a = BashOperator(task_id="a", bash_command="sleep 0.5; echo a")
    b = BashOperator(task_id="b", bash_command="sleep 2; echo b")
    c = BashOperator(task_id="c", bash_command="sleep 0.5; echo c")
    side = BashOperator(task_id="side", bash_command="sleep 1; echo side")
    a >> b >> c
    a >> side
''',
    f"{GRID_DAG}.py": f'''
from datetime import datetime

from zonda import DAG, Param, TaskGroup
from zonda.operators import BashOperator

rows = Param(3, type="integer", description="Rows to load; a negative number fails the load")
with DAG("{GRID_DAG}", schedule=None, start_date=datetime(2024, 1, 1), params={{"rows": rows}}):
    extract = BashOperator(task_id="extract", bash_command="sleep 1; echo extract {{{{ params.rows }}}}")
    with TaskGroup("transform"):
        clean = BashOperator(task_id="clean", bash_command="sleep 0.5; echo clean")
        join = BashOperator(task_id="join", bash_command="sleep 0.5; echo join")
    load = BashOperator(task_id="load", bash_command="test {{{{ params.rows }}}} -ge 0", retries=0)
    extract >> [clean, join] >> load
''',
}


@dataclass
class StandaloneInstallation:
    """A running ``zonda standalone``: its URL, its admin's login (in the shape ``BrowserSite`` reads: ``users``
    by role, ``password``) and its metastore, read by the tests through the operations layer."""

    home: Path
    url: str
    password: str
    engine: Any
    users: dict[str, str] = field(default_factory=lambda: {"Admin": "admin"})

    def wait_for_dag(self, dag_id: str) -> None:
        from zonda.operations.dags import list_dags

        self._wait(lambda: dag_id in {d.dag_id for d in list_dags(self.engine)}, f"the DAG {dag_id} to be parsed")

    def trigger(self, dag_id: str, **conf: Any) -> str:
        """Queue a run (with ``conf``) as ``zonda dags trigger`` does; its run id."""
        from zonda.operations.dag_runs import trigger

        self.wait_for_dag(dag_id)
        return trigger(self.engine, dag_id, conf=conf or None).run_id

    def run_conf(self, dag_id: str, run_id: str) -> dict[str, Any]:
        from zonda.operations.dag_runs import get_run

        return dict(get_run(self.engine, dag_id, run_id).conf)

    def wait_for_run(self, dag_id: str, run_id: str, states: tuple[str, ...] = ("success", "failed")) -> str:
        """Wait until the run is in one of ``states``; its state."""
        from zonda.operations.dag_runs import get_run

        self._wait(lambda: get_run(self.engine, dag_id, run_id).state in states, f"run {run_id} to reach {states}")
        return get_run(self.engine, dag_id, run_id).state

    def task_states(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """task id -> (state, try number)."""
        from zonda.operations.task_instances_read import states_for_dag_run

        return {ti.task_id: (ti.state, ti.try_number) for ti in states_for_dag_run(self.engine, dag_id, run_id)}

    def _wait(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"waited {RUN_TIMEOUT_SECONDS} s for {what}; see the standalone output in {self.home}")


def write_dag_folder(home: Path) -> None:
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for name, source in DAG_FILES.items():
        (dags / name).write_text(source.lstrip(), encoding="utf-8")


def run_standalone(home: Path) -> Any:
    """Start it on ``home`` (DAG folder written first); a generator yielding the installation, stopping it after."""
    from zonda.metastore.db import Metastore

    write_dag_folder(home)
    out = home / "standalone.out"
    proc = start_standalone(home, out, ZONDA__CORE__PARALLELISM="4")
    try:
        banner = read_banner(proc, out)
        assert banner.url and banner.password, banner.text
        store = Metastore(f"sqlite:///{home / 'zonda.db'}")
        try:
            yield StandaloneInstallation(home, banner.url, banner.password.group(1), store.engine)
        finally:
            store.dispose()
    finally:
        stop_standalone(proc, out)
