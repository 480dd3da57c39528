"""TriggerDagRunOperator and ExternalTaskSensor checked against each other across two DAGs, through the real
scheduler (LocalExecutor) and, for the deferrable paths, the real triggerer in a thread of this process.

The "controller" DAG triggers the "target" DAG at its own logical date and, beside that, senses the target's
``work`` task at the same logical date. Final states follow Airflow 3.3's documented behaviour: a triggered run
that fails fails the waiting trigger task (``failed_states`` default ``["failed"]``), and a sensor with
``failed_states=["failed"]`` fails as soon as the external task does.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import scheduler_helpers as h
from sqlalchemy import select

from zonda.metastore import tables as t


class Env(h.LedgerSetup):
    """A configured home whose runs a scheduler in this process drives, with a triggerer thread when asked."""

    def drive(self, run_ids: list[int], *, triggerer: bool = False, timeout: float = 60) -> dict[int, str]:
        from zonda.executors.local import LocalExecutor
        from zonda.scheduler.scheduler import Scheduler
        from zonda.triggerer import Triggerer

        scheduler = Scheduler(
            self.settings, executor=LocalExecutor(parallelism=4, settings=self.settings), metastore=self.metastore
        )
        stop = threading.Event()
        threads: list[threading.Thread] = []

        def start_triggerer() -> None:
            if triggerer and not threads:  # after the scheduler forked its workers
                thread = threading.Thread(target=Triggerer(self.settings, self.metastore).run, args=(stop,))
                thread.start()
                threads.append(thread)

        try:
            return h.drive(scheduler, run_ids, timeout=timeout, on_pass=start_triggerer)
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)

    def states(self, dag_id: str) -> dict[str, str]:
        """The task states of the DAG's only run."""
        (run,) = h.dag_runs(self.engine, dag_id)
        return h.states_by_task(self.engine, run.id)  # type: ignore[return-value]

    def xcom(self, dag_id: str, task_id: str, key: str = "return_value") -> Any:
        from zonda import serde

        x = t.xcom
        with self.engine.connect() as conn:
            value = conn.execute(
                select(x.c.value).where(x.c.dag_id == dag_id, x.c.task_id == task_id, x.c.key == key)
            ).scalar()
        return None if value is None else serde.loads(value)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, zonda_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with Env(zonda_home, url, monkeypatch) as setup:
        yield setup


TARGET = """
from datetime import datetime
from zonda import DAG
from zonda.params import Param
from zonda.operators import PythonOperator


def work(**context):
    conf = context["dag_run"].conf
    if conf["outcome"] == "fail":
        raise RuntimeError("asked to fail")
    return conf["note"]


with DAG("target", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=False,
         params={"outcome": Param("ok", enum=["ok", "fail"]), "note": Param("", type="string")}):
    PythonOperator(task_id="work", python_callable=work)
"""

CONTROLLER = """
from datetime import datetime
from zonda import DAG
from zonda.operators import TriggerDagRunOperator
from zonda.sensors import ExternalTaskSensor

DEFERRABLE = {deferrable!r}

with DAG("controller", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=False):
    TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="target",
        trigger_run_id="from_controller",
        logical_date="{{{{ logical_date }}}}",
        conf={{"outcome": "{{{{ dag_run.conf['outcome'] }}}}", "note": "{{{{ dag_run.conf['note'] }}}}"}},
        wait_for_completion=True,
        poke_interval=0.2,
        deferrable=DEFERRABLE,
    )
    ExternalTaskSensor(
        task_id="watch",
        external_dag_id="target",
        external_task_id="work",
        failed_states=["failed"],
        poke_interval=0.2,
        timeout=60,
        deferrable=DEFERRABLE,
    )
"""


def _setup(env: Env, *, deferrable: bool) -> None:
    env.dag("target.py", TARGET)
    env.dag("controller.py", CONTROLLER.format(deferrable=deferrable))
    env.store()


@pytest.mark.parametrize("deferrable", [False, True], ids=["poll", "deferrable"])
def test_triggered_run_succeeds_and_the_sensor_sees_it(env: Env, deferrable: bool) -> None:
    _setup(env, deferrable=deferrable)
    # A conf value that looks like a template stays data: rendered once as the controller's conf template,
    # it reaches the target as the literal text, never evaluated.
    run = env.trigger("controller", conf={"outcome": "ok", "note": "{{ 7 * 7 }}"})
    assert env.drive([run], triggerer=deferrable) == {run: "success"}
    assert env.states("controller") == {"trigger": "success", "watch": "success"}
    (target,) = h.dag_runs(env.engine, "target")
    (controller,) = h.dag_runs(env.engine, "controller")
    assert (target.run_id, target.state, target.logical_date) == ("from_controller", "success", controller.logical_date)
    assert env.xcom("target", "work") == "{{ 7 * 7 }}"
    assert env.xcom("controller", "trigger", "trigger_run_id") == "from_controller"


@pytest.mark.parametrize("deferrable", [False, True], ids=["poll", "deferrable"])
def test_failed_triggered_run_fails_both_waiting_tasks(env: Env, deferrable: bool) -> None:
    _setup(env, deferrable=deferrable)
    run = env.trigger("controller", conf={"outcome": "fail", "note": ""})
    assert env.drive([run], triggerer=deferrable) == {run: "failed"}
    assert env.states("target") == {"work": "failed"}
    assert env.states("controller") == {"trigger": "failed", "watch": "failed"}
