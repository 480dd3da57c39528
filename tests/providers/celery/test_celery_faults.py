"""Fault tests of the CeleryExecutor against real brokers and real `zonda celery worker` processes, with CPU hogs
beside them (a machine as busy as CI): nothing lost, nothing run twice.

- kill -9 a worker's whole process group while 20 tasks run, 20 times: each lost try is retried on another
  worker (found by ``task_heartbeat_timeout``), none is lost, none succeeds twice;
- stop the broker (a private redis-server without persistence, so its messages are lost) while 200 tasks are
  queued, then start it again: every task ends once (``task_queued_timeout`` sends the lost ones again);
- a restarted scheduler adopts what its predecessor queued: nothing is sent twice.

The ledger each task appends to (``tests/integration/scheduler_helpers.py``) is the proof of what ran. Every
wait is bounded; every process started here (workers, redis-server, hogs) is killed at the end. The shared
Redis and RabbitMQ are never stopped: each test uses queues of its own, removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

import scheduler_helpers as h

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SHARED_BROKERS = {
    "redis": "redis://127.0.0.1:6379/11",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}

#: Fast failure detection for the tests: a dead try is retried within seconds, a lost message soon after.
FAST = {
    ("core", "executor"): "CeleryExecutor",
    ("core", "parallelism"): 256,
    ("core", "max_active_tasks_per_dag"): 256,
    ("scheduler", "task_heartbeat_interval"): 0.2,
    ("scheduler", "task_heartbeat_timeout"): 2.5,
    # Only a message lost on the way needs this (none should be here): generous, so a busy machine's slow start
    # is not taken for a loss.
    ("scheduler", "task_queued_timeout"): 20.0,
}

HOLDING_DAG = """
import os
import re
import time
from datetime import datetime, timedelta
from zonda import DAG
from zonda.operators import PythonOperator

RELEASE = {release!r}


def hold(**context):
    # Runs until the test releases the run (bounded: 60 s), so every try is still running when a worker dies.
    record(context, "start")
    path = os.path.join(RELEASE, re.sub(r"\\W", "_", context["ti"].run_id))
    for _ in range(600):
        if os.path.exists(path):
            break
        time.sleep(0.1)
    record(context, "end")


with DAG(
    "held_dag",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    max_active_tasks=20,
    default_args={{"retries": 3, "retry_delay": timedelta(0)}},
):
    for i in range(20):
        PythonOperator(task_id=f"t{{i:02d}}", python_callable=hold, queue={queue!r})
"""

WIDE_DAG = """
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def work(**context):
    record(context, "start")
    record(context, "end")


with DAG("wide_dag", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=200):
    for i in range({count}):
        PythonOperator(task_id=f"t{{i:03d}}", python_callable=work, queue={queue!r}, pool={pool!r})
"""


class Env(h.LedgerSetup):
    """A PostgreSQL installation running the CeleryExecutor on ``broker``, on a queue of its own."""

    def __init__(self, home: Path, url: str, monkeypatch: pytest.MonkeyPatch, broker: str) -> None:
        self.broker = broker
        self.queue = f"zt-{uuid.uuid4().hex[:10]}"
        super().__init__(home, url, monkeypatch, {**FAST, ("celery", "broker_url"): broker})

    def scheduler(self) -> Any:
        from zonda.scheduler.scheduler import Scheduler
        from zonda_celery.executor import CeleryExecutor

        executor = CeleryExecutor(parallelism=256, settings=self.settings)
        return Scheduler(self.settings, executor=executor, metastore=self.metastore)

    def start_worker(self, started: list[h.SchedulerProcess], name: str, concurrency: int) -> h.SchedulerProcess:
        """``zonda celery worker`` in a session of its own (returns at once; see :func:`ready`)."""
        env = h.subprocess_env(self.home, self.url, self.options)
        argv = [sys.executable, "-m", "zonda", "celery", "worker", "-q", self.queue, "-c", str(concurrency)]
        process = h.start_process([*argv, "--hostname", f"{name}@zt"], env, self.home / f"{name}.log", cwd=self.home)
        started.append(process)
        return process

    def run_key(self, dag_run_id: int) -> str:
        (run,) = [r for r in h.dag_runs(self.engine, self.dag_name) if r.id == dag_run_id]
        return str(run.run_id)

    dag_name = ""

    def remove_queue(self) -> None:
        from kombu import Connection

        with contextlib.suppress(Exception), Connection(self.broker, connect_timeout=5) as conn:
            channel = conn.default_channel
            channel.queue_purge(self.queue)
            channel.queue_delete(self.queue)


def ready(process: h.SchedulerProcess, timeout: float = 90) -> None:
    h.wait_for(lambda: " ready." in process.output() or process.proc.poll() is not None, timeout, what="worker ready")
    assert process.proc.poll() is None, process.output()[-3000:]


@pytest.fixture
def processes() -> Iterator[list[h.SchedulerProcess]]:
    with h.scheduler_processes() as started:
        yield started


# --- kill -9 a worker's process group while 20 tasks run ------------------------------------------------------

#: Rounds per broker. The issue's figure is 20; each round costs about 28 s on Redis (most of it the surviving
#: worker taking up the retries late, see the provider's README) and 38 s on RabbitMQ on this 2-core machine, so
#: 20 rounds alone would take the whole suite's 15-minute budget. The default run does 3 on Redis (whose
#: unacknowledged messages of a dead worker wait for the visibility timeout) and 1 on RabbitMQ (which gives them
#: back at once; the claim refuses the copies); ``ZONDA_CELERY_KILL_ROUNDS=redis=20,rabbitmq=20`` runs the full
#: count, as the release check does.
KILL_ROUNDS = {"redis": 3, "rabbitmq": 1} | {
    broker: int(count)
    for broker, _, count in (
        item.partition("=") for item in os.environ.get("ZONDA_CELERY_KILL_ROUNDS", "").split(",") if item
    )
}


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("broker", sorted(SHARED_BROKERS))
def test_a_worker_killed_with_its_tasks_loses_nothing_and_runs_nothing_twice(
    broker: str, zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, processes: list
) -> None:
    release = zonda_home / "release"
    release.mkdir()
    with Env(zonda_home, postgres_url, monkeypatch, SHARED_BROKERS[broker]) as env, h.cpu_hogs(2):
        env.dag_name = "held_dag"
        env.dag("held_dag.py", HOLDING_DAG.format(release=str(release), queue=env.queue))
        env.store()
        try:
            workers = [env.start_worker(processes, f"w{i}-0", 10) for i in range(2)]
            scheduler = env.scheduler()
            scheduler.start()
            started = time.monotonic()
            try:
                for round_no in range(KILL_ROUNDS[broker]):
                    for worker in workers:
                        ready(worker)
                    victim_slot = round_no % 2
                    workers[victim_slot] = one_kill_round(
                        env, scheduler, processes, workers, victim_slot, release, round_no
                    )
            finally:
                scheduler.shutdown()
            print(f"\n{KILL_ROUNDS[broker]} kill rounds on {broker}: {time.monotonic() - started:.1f} s")
        finally:
            env.remove_queue()


def run_to_end(env: Env, dag_run_id: int, timeout: float, on_pass: Any = lambda: None) -> str:
    """A scheduler of its own runs ``dag_run_id`` to its end (bounded); ``on_pass`` after each pass."""
    scheduler = env.scheduler()
    scheduler.start()
    try:
        return until_finished(scheduler, dag_run_id, timeout, on_pass)
    finally:
        scheduler.shutdown()


def until_finished(scheduler: Any, dag_run_id: int, timeout: float, on_pass: Any) -> str:
    """Scheduler passes (one scheduler for every round, as in production) until the run ends (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        scheduler.run_once()
        on_pass()
        state = h.run_states(scheduler.metastore.engine, [dag_run_id]).get(dag_run_id)
        if state in h.TERMINAL_RUN:
            return str(state)
        if time.monotonic() >= deadline:
            pytest.fail(
                f"run not finished within {timeout} s: {h.states_by_task(scheduler.metastore.engine, dag_run_id)}"
            )


def one_kill_round(
    env: Env,
    scheduler: Any,
    processes: list,
    workers: list[h.SchedulerProcess],
    victim_slot: int,
    release: Path,
    round_no: int,
) -> h.SchedulerProcess:
    """Trigger a run of 20 holding tasks; once all 20 run, kill -9 one worker's process group, start its
    replacement, release the run; check the run. Returns the replacement worker."""
    dag_run_id = env.trigger("held_dag")
    run_key = env.run_key(dag_run_id)
    victim = workers[victim_slot]
    seen: dict[str, Any] = {}

    def kill_when_all_run() -> None:
        if seen:
            return
        starts = [e for e in env.entries() if e.run_id == run_key and e.event == "start"]
        if len(starts) < 20:
            return
        seen["victim_pids"] = set(h.session_pids(victim.pid))
        victim.kill_group()
        seen["replacement"] = env.start_worker(processes, f"w{victim_slot}-{round_no + 1}", 10)
        (release / re.sub(r"\W", "_", run_key)).touch()

    state = until_finished(scheduler, dag_run_id, 120, kill_when_all_run)
    assert seen, "the 20 tasks never ran at once"
    entries = [e for e in env.entries() if e.run_id == run_key]
    rows = h.task_instances(env.engine, dag_run_id)
    assert state == "success", h.states_by_task(env.engine, dag_run_id)
    assert all(r.state == "success" for r in rows) and len(rows) == 20
    ends = Counter(e.task_id for e in entries if e.event == "end")
    assert ends == Counter({f"t{i:02d}": 1 for i in range(20)}), f"round {round_no}: ends {ends}"
    assert not h.duplicates(entries, "start"), f"round {round_no}: a try started twice"
    killed = {e.task_id for e in entries if e.event == "start" and e.try_number == 1 and e.pid in seen["victim_pids"]}
    assert killed, f"round {round_no}: the killed worker ran none of the 20 tasks"
    for entry in entries:
        if entry.event == "end" and entry.task_id in killed:
            # Retried (a later try), on another worker: the killed one's processes are all gone.
            assert entry.try_number >= 2 and entry.pid not in seen["victim_pids"], entry
    return seen["replacement"]


# --- the broker stops while 200 tasks are queued ------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port, without persistence: stopping it loses every
    message it held (the shared Redis is never touched)."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail(
                "redis-server is not installed; the broker-restart test starts a private one (apt redis-server)"
            )
        self.executable, self.folder = executable, folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen([*argv, "--dir", str(self.folder)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        h.wait_for(self.answers, 20, what=f"the private redis-server on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


WIDE = 200


@pytest.mark.timeout(900)
def test_a_broker_restart_while_200_tasks_are_queued_ends_each_task_once(
    private_redis: PrivateRedis, zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, processes: list
) -> None:
    monkeypatch.setenv(h.env_name("scheduler", "task_queued_timeout"), "8")
    with Env(zonda_home, postgres_url, monkeypatch, private_redis.url) as env, h.cpu_hogs(2):
        env.options[("scheduler", "task_queued_timeout")] = 8
        env.dag("wide_dag.py", WIDE_DAG.format(count=WIDE, queue=env.queue, pool="wide_pool"))
        env.store()
        h.create_pool(env.engine, "wide_pool", WIDE)  # the default pool's 128 slots would hold back 72 of them
        first = env.start_worker(processes, "b1", 4)
        ready(first)
        dag_run_id = env.trigger("wide_dag")
        outage: dict[str, Any] = {}

        def restart_broker_once_all_are_queued() -> None:
            if outage:
                return
            states = Counter(r.state for r in h.task_instances(env.engine, dag_run_id))
            if states.get("scheduled", 0) or states.get(None, 0) or sum(states.values()) < WIDE:
                return
            outage["queued"] = states.get("queued", 0)
            private_redis.stop()  # every message still on the broker is lost
            time.sleep(1.0)
            private_redis.start()
            outage["second"] = env.start_worker(processes, "b2", 4)

        started = time.monotonic()
        state = run_to_end(env, dag_run_id, 300, restart_broker_once_all_are_queued)
        print(
            f"\n{WIDE} tasks through a broker restart: {time.monotonic() - started:.1f} s; {outage.get('queued')} queued at the stop"
        )
    assert outage["queued"] >= WIDE // 2, f"only {outage['queued']} tasks were still queued when the broker stopped"
    assert state == "success", h.states_by_task(env.engine, dag_run_id)
    entries = env.entries()
    assert Counter(e.task_id for e in entries if e.event == "end") == Counter({f"t{i:03d}": 1 for i in range(WIDE)})
    assert not h.duplicates(entries, "start")
    rows = h.task_instances(env.engine, dag_run_id)
    assert {(r.state, r.try_number) for r in rows} == {("success", 1)}  # no try was charged for the outage


# --- a graceful stop, a scheduler restart ----------------------------------------------------------------------

PAIR_DAG = """
import os
import time
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator

RELEASE = {release!r}


def held(**context):
    record(context, "start")
    for _ in range(600):  # bounded: 60 s
        if os.path.exists(RELEASE):
            break
        time.sleep(0.1)
    record(context, "end")


def after(**context):
    record(context, "end")


with DAG("pair_dag", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="held", python_callable=held, queue={queue!r}) >> PythonOperator(
        task_id="after", python_callable=after, queue={queue!r}
    )
"""


@pytest.mark.parametrize("broker", sorted(SHARED_BROKERS))
def test_sigterm_finishes_the_task_the_worker_holds_and_takes_no_new_one(
    broker: str, zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, processes: list
) -> None:
    release = zonda_home / "release-now"
    with Env(zonda_home, postgres_url, monkeypatch, SHARED_BROKERS[broker]) as env:
        env.dag("pair_dag.py", PAIR_DAG.format(release=str(release), queue=env.queue))
        env.store()
        try:
            stopping = env.start_worker(processes, "stopping", 2)
            ready(stopping)
            dag_run_id = env.trigger("pair_dag")
            steps: dict[str, Any] = {}

            def stop_the_worker_while_it_holds_a_task() -> None:
                if "sigterm" not in steps and any(e.event == "start" for e in env.entries()):
                    stopping.proc.send_signal(signal.SIGTERM)  # the main process only, as `docker stop` does
                    steps["sigterm"] = time.monotonic()
                    h.wait_for(lambda: "warm shutdown" in stopping.output().lower(), 30, what="a warm shutdown")
                    release.touch()
                if "sigterm" in steps and "second" not in steps and stopping.proc.poll() is not None:
                    steps["second"] = env.start_worker(processes, "second", 2)

            state = run_to_end(env, dag_run_id, 120, stop_the_worker_while_it_holds_a_task)
        finally:
            env.remove_queue()
    assert stopping.proc.returncode == 0, stopping.output()[-3000:]
    assert state == "success", h.states_by_task(env.engine, dag_run_id)
    rows = {r.task_id: r for r in h.task_instances(env.engine, dag_run_id)}
    assert (rows["held"].state, rows["held"].try_number) == ("success", 1)  # finished by the stopping worker
    assert "Executing pair_dag.held " in stopping.output()
    assert "Executing pair_dag.after " not in stopping.output()  # no new work after SIGTERM
    assert "Executing pair_dag.after " in steps["second"].output()
    assert Counter(e.task_id for e in env.entries() if e.event == "end") == {"held": 1, "after": 1}


@pytest.mark.parametrize("broker", sorted(SHARED_BROKERS))
def test_a_restarted_scheduler_adopts_the_tasks_its_predecessor_queued(
    broker: str, zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, processes: list
) -> None:
    count = 5
    with Env(zonda_home, postgres_url, monkeypatch, SHARED_BROKERS[broker]) as env:
        env.dag("wide_dag.py", WIDE_DAG.format(count=count, queue=env.queue, pool="default_pool"))
        env.store()
        try:
            dag_run_id = env.trigger("wide_dag")
            first = env.scheduler()  # no worker yet: its messages wait on the broker
            first.start()
            try:
                h.wait_for(lambda: (first.run_once(), len(first.executor.running) == count)[1], 30, what="all queued")
            finally:
                first.shutdown()
            second = env.scheduler()
            second.start()
            try:
                rows = h.task_instances(env.engine, dag_run_id)
                assert {(r.state, r.queued_by_job_id) for r in rows} == {("queued", second.job_id)}
                worker = env.start_worker(processes, "adopted", 2)
                state = until_finished(second, dag_run_id, 90, lambda: None)
            finally:
                second.shutdown()
        finally:
            env.remove_queue()
    assert state == "success", h.states_by_task(env.engine, dag_run_id)
    output = worker.output()
    # Each task's message was sent once (by the first scheduler): one delivery each, none refused.
    assert output.count("Executing wide_dag.") == count and "claimed" not in output, output[-3000:]
    assert Counter(e.task_id for e in env.entries() if e.event == "end") == {f"t{i:03d}": 1 for i in range(count)}


# --- a long task on Redis is delivered once ---------------------------------------------------------------------

LONG_DAG = """
import time
from datetime import datetime
from zonda import DAG
from zonda.operators import PythonOperator


def long_task(**context):
    record(context, "start")
    time.sleep(7)
    record(context, "end")


with DAG("long_dag", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="long", python_callable=long_task, queue={queue!r})
"""

#: A test-sized Redis: unacknowledged messages are swept every second (production: every 100 s).
FAST_SWEEP = {
    ("celery_broker_transport_options", "unacked_restore_interval"): 1,
    ("celery_broker_transport_options", "unacked_restore_throttle"): 1,
}


@pytest.mark.parametrize("sizing", ["fixed 2 s, shorter than the task", "sized from execution_timeout"])
def test_a_task_longer_than_a_fixed_visibility_timeout_is_delivered_once(
    sizing: str, zonda_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, processes: list
) -> None:
    """A 7-second task on Redis with an idle second worker. With a fixed visibility timeout shorter than the task
    (kombu's one hour, scaled to this test) Redis delivers the message again while it runs: the claim keeps the
    copy from running (the control, which shows this test sees redeliveries). Sized from ``[celery]
    execution_timeout``, the message is delivered once."""
    for (section, key), value in FAST_SWEEP.items():
        monkeypatch.setenv(h.env_name(section, key), str(value))
    if sizing.startswith("fixed"):
        monkeypatch.setenv(h.env_name("celery_broker_transport_options", "visibility_timeout"), "2")
    else:
        monkeypatch.setenv(h.env_name("celery", "execution_timeout"), "10")
    with Env(zonda_home, postgres_url, monkeypatch, SHARED_BROKERS["redis"]) as env:
        env.options.update(FAST_SWEEP)
        if sizing.startswith("fixed"):
            env.options[("celery_broker_transport_options", "visibility_timeout")] = 2
        else:
            env.options[("celery", "execution_timeout")] = 10
        env.dag("long_dag.py", LONG_DAG.format(queue=env.queue))
        env.store()
        try:
            workers = [env.start_worker(processes, f"v{i}", 1) for i in range(2)]
            for worker in workers:
                ready(worker)
            dag_run_id = env.trigger("long_dag")
            state = run_to_end(env, dag_run_id, 90)
            time.sleep(2)  # a redelivery due at the task's end would be seen by now
        finally:
            env.remove_queue()
    deliveries = sum(w.output().count("Executing long_dag.long ") for w in workers)
    assert state == "success"
    assert Counter(e.event for e in env.entries()) == {"start": 1, "end": 1}  # it ran once either way
    if sizing.startswith("fixed"):
        assert deliveries >= 2, "the control saw no redelivery: the test would not notice one"
    else:
        assert deliveries == 1, [w.output()[-2000:] for w in workers]
