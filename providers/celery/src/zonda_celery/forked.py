"""Running ``zonda tasks execute`` in a fork of the Celery pool process instead of a new interpreter.

Why: a new ``python -m zonda`` per task pays the interpreter's start and every import again (most of a short
task's cost, and seconds each on a busy machine); a fork of the pool process, which imported them once, pays
neither. The child is still a process of its own (its own metastore connection, its own heartbeat, SIGTERM
handled as in any task process) and runs exactly the command a worker on another machine would run; it stays
in the worker's process group, so a worker killed with its group takes its tasks with it (the scheduler's
heartbeat check retries them).

The child never returns into Celery's code: it leaves with ``os._exit``, so nothing the pool process holds
(the broker's and the result backend's connections, Celery's state) is flushed or closed twice.
"""

from __future__ import annotations

import os
import signal
import sys

#: What every task imports anyway, imported once in the pool process so each fork starts with them.
_WARM_MODULES = (
    "zonda.cli",
    "zonda.cli.tasks_execute_command",
    "zonda.executors.workload",
    "zonda.runner.dag_runner",
    "zonda.runner.task_runner",
    "zonda.operators",
)


def warm_up() -> None:
    """Import what a task process needs, in the pool process (once: later calls cost nothing)."""
    import importlib

    for name in _WARM_MODULES:
        importlib.import_module(name)


def execute_in_fork(workload_json: str) -> int:
    """``zonda tasks execute --workload <workload_json>`` in a forked child; its exit code (negative: the
    signal that killed it)."""
    warm_up()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the task process
        code = 1
        try:
            code = _child(workload_json)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _child(workload_json: str) -> int:
    """The task process's life: a fresh process's signals and standard streams, then the CLI command."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
    # Celery routes the pool process's print() into its logger; a task process writes to the real streams.
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    from zonda.cli import main

    try:
        return main(["tasks", "execute", "--workload", workload_json])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
