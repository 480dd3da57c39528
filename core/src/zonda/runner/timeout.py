"""``execution_timeout`` for code running in this process.

In the main thread a SIGALRM timer raises :class:`ZondaTaskTimeout` inside the task's code, wherever it is
(including a blocking ``time.sleep`` or a wait on a subprocess). In another thread, where signals cannot be
used, a watchdog thread raises the exception asynchronously in the task's thread; that fires at the next
Python bytecode, so a task blocked in C code is interrupted when it returns to Python.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from zonda.exceptions import ZondaTaskTimeout


@contextmanager
def deadline(seconds: float | None, message: str) -> Iterator[None]:
    if not seconds or seconds <= 0:
        yield
        return
    if threading.current_thread() is threading.main_thread():

        def on_alarm(signum: int, frame: object) -> None:
            raise ZondaTaskTimeout(message)

        previous = signal.signal(signal.SIGALRM, on_alarm)
        outer_remaining, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
        started = time.monotonic()
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if outer_remaining > 0:
                # Someone else (an outer deadline, pytest-timeout) had a timer running: re-arm what is left.
                left = outer_remaining - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
        return
    target = threading.get_ident()
    cancelled = threading.Event()

    def watchdog() -> None:
        if not cancelled.wait(seconds):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(ZondaTaskTimeout))

    thread = threading.Thread(target=watchdog, daemon=True, name="zonda-timeout")
    thread.start()
    try:
        yield
    except ZondaTaskTimeout as exc:
        if exc.args:
            raise
        # Raised asynchronously as a bare class: give it the message.
        raise ZondaTaskTimeout(message) from None
    finally:
        cancelled.set()
