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

    seen: set[tuple[str, str]]

    def drive(self, run_ids: list[int], *, triggerer: bool = False, timeout: float = 60) -> dict[int, str]:
        """Drive the runs to their end; ``seen`` collects every (task id, state) the runs' instances passed."""
        from zonda.executors.local import LocalExecutor
        from zonda.scheduler.scheduler import Scheduler
        from zonda.triggerer import Triggerer

        scheduler = Scheduler(
            self.settings, executor=LocalExecutor(parallelism=4, settings=self.settings), metastore=self.metastore
        )
        stop = threading.Event()
        threads: list[threading.Thread] = []
        self.seen = set()

        def on_pass() -> None:
            for run_id in run_ids:
                self.seen |= {(r.task_id, r.state) for r in h.task_instances(self.engine, run_id) if r.state}
            if triggerer and not threads:  # after the scheduler forked its workers
                thread = threading.Thread(target=Triggerer(self.settings, self.metastore).run, args=(stop,))
                thread.start()
                threads.append(thread)

        try:
            return h.drive(scheduler, run_ids, timeout=timeout, on_pass=on_pass)
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)

    def states(self, dag_id: str) -> dict[str, str]:
        """The task states of the DAG's only run."""
        (run,) = h.dag_runs(self.engine, dag_id)
        return h.states_by_task(self.engine, run.id)  # type: ignore[return-value]

    def log(self, dag_id: str, task_id: str) -> str:
        """The first try's log of the task in the DAG's only run."""
        from zonda.runner.logs import attempt_log_path

        (run,) = h.dag_runs(self.engine, dag_id)
        path = attempt_log_path(self.home / "logs", dag_id, run.run_id, task_id, -1, 1)
        return path.read_text(encoding="utf-8", errors="replace")

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
from zonda.operators import EmptyOperator, PythonOperator
from zonda.taskgroup import TaskGroup


def work(**context):
    conf = context["dag_run"].conf
    if conf["outcome"] == "fail":
        raise RuntimeError("asked to fail")
    return conf["note"]


with DAG("target", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=False,
         params={"outcome": Param("ok", enum=["ok", "fail"]), "note": Param("", type="string")}):
    PythonOperator(task_id="work", python_callable=work)
    with TaskGroup("grp"):
        EmptyOperator(task_id="inner")
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
    deferred = {("trigger", "deferred"), ("watch", "deferred")}
    assert deferred <= env.seen if deferrable else not deferred & env.seen


@pytest.mark.parametrize("deferrable", [False, True], ids=["poll", "deferrable"])
def test_failed_triggered_run_fails_both_waiting_tasks(env: Env, deferrable: bool) -> None:
    _setup(env, deferrable=deferrable)
    run = env.trigger("controller", conf={"outcome": "fail", "note": ""})
    assert env.drive([run], triggerer=deferrable) == {run: "failed"}
    assert env.states("target") == {"work": "failed", "grp.inner": "success"}
    assert env.states("controller") == {"trigger": "failed", "watch": "failed"}
    deferred = {("trigger", "deferred"), ("watch", "deferred")}
    assert deferred <= env.seen if deferrable else not deferred & env.seen
    assert "'target' run 'from_controller' ended failed, a failed state" in env.log("controller", "trigger")
    assert "ended in one of the failed states ['failed']" in env.log("controller", "watch")


AGAIN = """
from datetime import datetime
from zonda import DAG
from zonda.operators import EmptyOperator, TriggerDagRunOperator

common = dict(trigger_dag_id="target", trigger_run_id="fixed", conf={"outcome": "ok", "note": "n"}, poke_interval=0.2)

with DAG("sleeping", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=True):
    EmptyOperator(task_id="nothing")

with DAG("again", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=False):
    create = TriggerDagRunOperator(task_id="create", wait_for_completion=True, **common)
    # reset_dag_run wins over skip_when_already_exists, as in Airflow
    reset = TriggerDagRunOperator(
        task_id="reset", reset_dag_run=True, skip_when_already_exists=True, wait_for_completion=True, **common
    )
    plain = TriggerDagRunOperator(task_id="plain", retries=2, **common)
    skipper = TriggerDagRunOperator(task_id="skipper", skip_when_already_exists=True, **common)
    bad_conf = TriggerDagRunOperator(
        task_id="bad_conf", trigger_dag_id="target", trigger_run_id="other", conf={"outcome": "maybe"}
    )
    paused = TriggerDagRunOperator(task_id="paused", trigger_dag_id="sleeping", fail_when_dag_is_paused=True)
    unknown = TriggerDagRunOperator(task_id="unknown", trigger_dag_id="targte")
    create >> reset >> [plain, skipper]
"""


def test_existing_run_is_reset_refused_or_skipped_and_bad_conf_fails(env: Env) -> None:
    env.dag("target.py", TARGET)
    env.dag("again.py", AGAIN)
    env.store()
    run = env.trigger("again")
    assert env.drive([run]) == {run: "failed"}
    assert env.states("again") == {
        "create": "success",
        "reset": "success",  # the run was cleared and ran again
        "plain": "failed",  # Airflow 3 fails the task at once when the run exists
        "skipper": "skipped",
        "bad_conf": "failed",  # conf checked against the target's params: "maybe" is not in the enum
        "paused": "failed",
        "unknown": "failed",
    }
    (plain,) = [r for r in h.task_instances(env.engine, dag_id="again") if r.task_id == "plain"]
    assert plain.try_number == 1  # not retried
    assert "already has a run 'fixed'; set reset_dag_run=True" in env.log("again", "plain")
    assert "is paused (fail_when_dag_is_paused=True)" in env.log("again", "paused")
    assert "'maybe'" in env.log("again", "bad_conf")
    assert "no DAG 'targte' in the metastore; did you mean 'target'?" in env.log("again", "unknown")
    (target,) = h.dag_runs(env.engine, "target")  # no run "other" was created
    assert (target.run_id, target.state) == ("fixed", "success")
    (work,) = [r for r in h.task_instances(env.engine, target.id) if r.task_id == "work"]
    assert (work.state, work.try_number) == ("success", 2)
    assert h.dag_runs(env.engine, "sleeping") == []


WATCHER = """
from datetime import datetime, timedelta
from zonda import DAG
from zonda.sensors import ExternalTaskSensor

common = dict(external_dag_id="target", poke_interval=0.2, timeout=30, deferrable={deferrable!r})
hour = timedelta(hours=1)

with DAG("watcher", schedule=None, start_date=datetime(2024, 1, 1), is_paused_upon_creation=False):
    ExternalTaskSensor(task_id="delta", external_task_id="work", execution_delta=hour, **common)
    ExternalTaskSensor(task_id="date_fn", external_task_ids=["work"], execution_date_fn=lambda d, ti: [d - hour], **common)
    ExternalTaskSensor(task_id="whole_run", execution_delta=hour, check_existence=True, **common)
    ExternalTaskSensor(task_id="group", external_task_group_id="grp", execution_delta=hour, **common)
    ExternalTaskSensor(
        task_id="skipped", external_task_id="work", execution_delta=hour,
        allowed_states=["failed"], skipped_states=["success"], **common
    )
    ExternalTaskSensor(
        task_id="soft", external_task_id="work", execution_delta=hour,
        allowed_states=["failed"], failed_states=["success"], soft_fail=True, **common
    )
    ExternalTaskSensor(
        task_id="no_dag", external_dag_id="nope", check_existence=True, poke_interval=0.2, deferrable={deferrable!r}
    )
    # A missing DAG or task is a mistake, not an outcome: it fails even with soft_fail, as in Airflow.
    ExternalTaskSensor(task_id="no_task", external_task_id="nope", check_existence=True, soft_fail=True, **common)
    ExternalTaskSensor(task_id="no_group", external_task_group_id="nope", check_existence=True, **common)
    # No target run two hours back: the wait times out (polled, or the trigger's deferral timeout).
    never = dict(external_dag_id="target", execution_delta=2 * hour, poke_interval=0.2, timeout=1, deferrable={deferrable!r})
    ExternalTaskSensor(task_id="never", **never)
    ExternalTaskSensor(task_id="never_soft", soft_fail=True, **never)
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["poll", "deferrable"])
def test_sensor_dates_targets_and_verdicts(env: Env, deferrable: bool) -> None:
    from datetime import UTC, datetime, timedelta

    env.dag("target.py", TARGET)
    env.dag("watcher.py", WATCHER.format(deferrable=deferrable))
    env.store()
    at = datetime(2024, 6, 1, 12, tzinfo=UTC)
    target = env.trigger("target", conf={"outcome": "ok", "note": ""}, logical_date=at)
    watcher = env.trigger("watcher", logical_date=at + timedelta(hours=1))
    assert env.drive([target, watcher], triggerer=deferrable) == {target: "success", watcher: "failed"}
    assert env.states("watcher") == {
        "delta": "success",
        "date_fn": "success",
        "whole_run": "success",
        "group": "success",
        "skipped": "skipped",
        "soft": "skipped",
        "no_dag": "failed",
        "no_task": "failed",
        "no_group": "failed",
        "never": "failed",
        "never_soft": "skipped",
    }
    assert "The external DAG 'nope' does not exist." in env.log("watcher", "no_dag")
    assert "The external task(s) 'nope' in DAG 'target' do not exist." in env.log("watcher", "no_task")
    assert "The external task group 'nope' in DAG 'target' does not exist." in env.log("watcher", "no_group")
    assert "timed out" in env.log("watcher", "never")


def test_sensor_refuses_contradictory_arguments() -> None:
    from zonda.exceptions import DagDefinitionError
    from zonda.sensors import ExternalTaskSensor

    bad = [
        ({"external_task_id": "a", "external_task_ids": ["b"]}, "not both"),
        ({"external_task_id": "a", "external_task_group_id": "g"}, "cannot be combined"),
        ({"execution_delta": 1, "execution_date_fn": len}, "not both"),
        ({"external_task_id": "a", "allowed_states": ["queued", "bogus"]}, "'bogus'"),
        ({"allowed_states": ["up_for_retry"]}, "DAG run states"),  # no task: run states only
        ({"external_task_id": "a", "failed_states": ["success"]}, "listed twice"),
        ({"external_task_id": "a", "failed_states": ["skipped"], "skipped_states": ["skipped"]}, "listed twice"),
    ]
    for kwargs, message in bad:
        with pytest.raises(DagDefinitionError, match=message):
            ExternalTaskSensor(task_id="s", external_dag_id="d", **kwargs)


def test_trigger_operator_refuses_bad_arguments() -> None:
    from zonda.exceptions import DagDefinitionError
    from zonda.operators import TriggerDagRunOperator

    bad = [
        ({"conf": ["not", "a", "dict"]}, "conf must be a dict"),
        ({"poke_interval": 0}, "poke_interval must be a positive number"),
        ({"allowed_states": ["succeeded"]}, "succeeded not a DAG run state"),
        ({"failed_states": ["upstream_failed"]}, "upstream_failed not a DAG run state"),  # a task state
    ]
    for kwargs, message in bad:
        with pytest.raises(DagDefinitionError, match=message):
            TriggerDagRunOperator(task_id="t", trigger_dag_id="d", **kwargs)
