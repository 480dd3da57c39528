"""One local ``zonda celery worker`` for ``zonda standalone`` with ``core.executor = CeleryExecutor``, so the
whole setup (broker, scheduler, worker, log server) can be tried on one machine.

The worker is a child process with the standalone's home and environment, taking the queues of ``[celery]
standalone_worker_queues``. It stops with the standalone: SIGTERM (Celery's warm shutdown: it finishes what it
holds), then SIGKILL after ``[scheduler] shutdown_grace_period``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.config import Settings


@contextlib.contextmanager
def local_worker(settings: Settings) -> Iterator[str]:
    """Run the worker for the duration of the block; yields a line for the standalone's banner."""
    from zonda_celery.worker_command import parse_queues

    queues = parse_queues(str(settings.get("celery", "standalone_worker_queues")))
    env = dict(os.environ)
    env["ZONDA_HOME"] = str(settings.home)
    # What the standalone chose for itself (examples on by default) holds for its worker too.
    env["ZONDA__CORE__LOAD_EXAMPLES"] = str(bool(settings.get("core", "load_examples"))).lower()
    argv = [sys.executable, "-m", "zonda", "celery", "worker", "-q", ",".join(queues)]
    worker = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    try:
        yield f"a local Celery worker (pid {worker.pid}) on queues {', '.join(queues)}"
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(float(settings.get("scheduler", "shutdown_grace_period")))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
