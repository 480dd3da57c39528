"""The sensor base class: poke a condition until it holds or the sensor's ``timeout`` runs out.

A sensor is an operator whose :meth:`BaseSensor.execute` is a bounded loop around :meth:`BaseSensor.poke`.
Every wait is capped by the time left before ``timeout``, so a sensor never sleeps past its deadline, and the
last poke happens at the deadline rather than one ``poke_interval`` after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import (
    DagDefinitionError,
    TriggerError,
    ZondaFailException,
    ZondaSensorTimeout,
    ZondaSkipException,
    ZondaTaskTimeout,
)
from zonda.operators.base import BaseOperator

if TYPE_CHECKING:
    from zonda.context import Context

VALID_MODES = ("poke", "reschedule")
#: Default ``timeout``: a week, as in Airflow.
DEFAULT_TIMEOUT = 60 * 60 * 24 * 7
#: Exponents above this would overflow a float long before any sane ``max_wait`` applies.
_MAX_BACKOFF_EXPONENT = 32


@dataclass(frozen=True)
class PokeReturnValue:
    """What :meth:`BaseSensor.poke` may return instead of a bool, to hand a value to downstream tasks.

    When ``is_done`` is true the sensor finishes and ``xcom_value`` becomes its ``return_value`` XCom.
    """

    is_done: bool
    xcom_value: Any = None

    def __bool__(self) -> bool:
        return bool(self.is_done)


def _seconds(name: str, value: Any, task_id: str, *, allow_none: bool = False) -> float | None:
    """Accept seconds or a timedelta; refuse negatives and non-numbers with a message naming the argument."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise DagDefinitionError(
            f"sensor {task_id!r}: {name} must be a number of seconds or a timedelta, not {value!r}"
        )
    if seconds < 0:
        raise DagDefinitionError(f"sensor {task_id!r}: {name} must be >= 0, got {value!r}")
    return seconds


class BaseSensor(BaseOperator):
    """Subclass and implement :meth:`poke`, which returns True (or a true :class:`PokeReturnValue`) when done.

    - ``poke_interval``: seconds (or a timedelta) between pokes; default 60.
    - ``timeout``: how long to wait in total before failing with :class:`ZondaSensorTimeout`; default 7 days.
      The timeout fails the task without retries: waiting again would only repeat the same wait.
    - ``soft_fail``: end the task *skipped* instead of failed when the wait times out (also when the task's
      ``execution_timeout`` fires, or ``poke`` raises :class:`ZondaFailException`), as in Airflow.
    - ``mode``: ``"poke"`` keeps the worker slot while waiting; ``"reschedule"`` is meant to free it between
      pokes. Until the scheduler can reschedule, both wait in-process (a log line says so).
    - ``exponential_backoff``: grow the wait roughly as ``poke_interval * 2**n`` with jitter, so many sensors
      polling one service spread out; ``max_wait`` caps a single wait.
    - ``deferrable``: between pokes the sensor *defers* (``self.defer``) on a ``TimeDeltaTrigger`` of the next
      interval instead of sleeping, so it holds no worker slot while it waits; a triggerer wakes it and it
      pokes again. ``timeout`` still counts from the first poke (its start travels in ``next_kwargs``).
      Sensors that can wait on a dedicated trigger (``TimeDeltaSensor``, ``FileSensor``) defer once on it.
      Without a triggerer (``zonda dags test``) the trigger runs in process.
    """

    ui_color: ClassVar[str] = "#e6f1f2"
    valid_modes: ClassVar[tuple[str, ...]] = VALID_MODES

    def __init__(
        self,
        *,
        poke_interval: float | timedelta = 60,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        soft_fail: bool = False,
        mode: str = "poke",
        exponential_backoff: bool = False,
        max_wait: float | timedelta | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.poke_interval: float = _seconds("poke_interval", poke_interval, self.task_id)  # type: ignore[assignment]
        self.timeout: float = _seconds("timeout", timeout, self.task_id)  # type: ignore[assignment]
        self.max_wait = _seconds("max_wait", max_wait, self.task_id, allow_none=True)
        if mode not in self.valid_modes:
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: mode must be one of {', '.join(map(repr, self.valid_modes))}, not {mode!r}"
            )
        self.mode = mode
        self.soft_fail = soft_fail
        self.exponential_backoff = exponential_backoff
        self.deferrable = deferrable

    @property
    def reschedule(self) -> bool:
        return self.mode == "reschedule"

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check the condition once. Return True / a true :class:`PokeReturnValue` when it holds."""
        raise NotImplementedError(f"{type(self).__name__} must implement poke(context)")

    def execute(self, context: Context) -> Any:
        with self._soft_fail():
            if self.deferrable:
                return self.execute_deferrable(context)
            return self._wait(context)

    @contextmanager
    def _soft_fail(self, *extra: type[BaseException]) -> Iterator[None]:
        try:
            yield
        except (ZondaSensorTimeout, ZondaTaskTimeout, ZondaFailException, *extra) as exc:
            if self.soft_fail:
                raise ZondaSkipException(f"{exc} Skipping because soft_fail=True.") from exc
            raise

    # --- deferrable -------------------------------------------------------------------------------------

    def execute_deferrable(self, context: Context) -> Any:
        """``deferrable=True``: poke, and defer until the next poke instead of sleeping. Sensors with a
        dedicated trigger override this to defer on it."""
        return self._poke_or_defer(context, None, 0)

    def resume_poke(self, context: Context, event: Any = None, started_at: Any = None, poke_count: int = 0) -> Any:
        """Resumed after the wait between two pokes: poke again (and defer again if still not done)."""
        from zonda.timezone import coerce_datetime

        return self._poke_or_defer(context, coerce_datetime(started_at), int(poke_count or 0))

    def _poke_once(self, context: Context, started: datetime, poke_count: int) -> tuple[bool, Any, float]:
        """One poke of a sensor that waits outside this process (deferred or rescheduled): ``(done, xcom
        value, seconds until the next poke)``. Raises ZondaSensorTimeout once ``timeout`` since ``started`` is
        used up."""
        from zonda.timezone import utcnow

        result = self.poke(context)
        if result:
            self.log.info("Success criteria met after %d poke(s). Exiting.", poke_count)
            return True, (result.xcom_value if isinstance(result, PokeReturnValue) else None), 0.0
        elapsed = (utcnow() - started).total_seconds()
        remaining = self.timeout - elapsed
        if remaining <= 0:
            raise ZondaSensorTimeout(self._timeout_message(elapsed, poke_count))
        return False, None, min(self._get_next_poke_interval(poke_count), remaining)

    def _poke_or_defer(self, context: Context, started_at: datetime | None, poke_count: int) -> Any:
        from zonda.timezone import utcnow
        from zonda.triggers.temporal import TimeDeltaTrigger

        started = started_at or utcnow()
        poke_count += 1
        done, value, delay = self._poke_once(context, started, poke_count)
        if done:
            return value
        self.log.info("Condition not met (poke %d); deferring until the next poke in %.2fs", poke_count, delay)
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=delay)),
            method_name="resume_poke",
            kwargs={"started_at": started, "poke_count": poke_count},
        )

    def resume_execution(self, next_method: str, next_kwargs: Mapping[str, Any] | None, context: Context) -> Any:
        """Resume after a deferral; a trigger timeout is a sensor timeout (not retried) and, with
        ``soft_fail``, a trigger timeout or failure skips the task."""
        from zonda.runner.deferral import TriggerTimeout, resume_execution

        with self._soft_fail(TriggerError):
            try:
                return resume_execution(self, next_method, next_kwargs, context)
            except TriggerTimeout as exc:
                raise ZondaSensorTimeout(
                    f"Sensor {self.task_id!r} ({type(self).__name__}) timed out: {exc} "
                    f"(its timeout is {self.timeout:g}s). Raise `timeout`, or set soft_fail=True to skip instead."
                ) from exc

    # --- reschedule mode, under a scheduler ----------------------------------------------------------------

    def _poke_or_reschedule(self, context: Context, started_at: datetime | None, poke_count: int) -> Any:
        from zonda.exceptions import TaskRescheduled
        from zonda.timezone import utcnow

        started = started_at or utcnow()
        poke_count += 1
        done, value, delay = self._poke_once(context, started, poke_count)
        if done:
            return value
        self.log.info("Condition not met (poke %d); rescheduling the next poke in %.2fs", poke_count, delay)
        raise TaskRescheduled(
            utcnow() + timedelta(seconds=delay),
            "resume_reschedule",
            {"started_at": started, "poke_count": poke_count},
        )

    def resume_reschedule(
        self, context: Context, event: Any = None, started_at: Any = None, poke_count: int = 0
    ) -> Any:
        """Queued again after a reschedule: poke (and reschedule again if still not done), same try; the
        ``timeout`` counts from the first poke."""
        from zonda.timezone import coerce_datetime

        return self._poke_or_reschedule(context, coerce_datetime(started_at), int(poke_count or 0))

    def _remaining_timeout(self, started_at: datetime | None = None) -> timedelta:
        """What is left of ``timeout`` since ``started_at`` (now when None), for a deferral's timeout."""
        from zonda.timezone import utcnow

        elapsed = (utcnow() - started_at).total_seconds() if started_at is not None else 0.0
        return timedelta(seconds=max(self.timeout - elapsed, 0.0))

    def _wait(self, context: Context) -> Any:
        if self.reschedule and context.get("reschedule_supported"):
            return self._poke_or_reschedule(context, None, 0)
        if self.reschedule:
            self.log.info(
                "mode='reschedule': no scheduler runs this task (zonda dags test / tasks test), so the sensor "
                "waits in process between pokes as in mode='poke'"
            )
        started = time.monotonic()
        poke_count = 0
        while True:
            poke_count += 1
            result = self.poke(context)
            if result:
                self.log.info("Success criteria met after %d poke(s). Exiting.", poke_count)
                return result.xcom_value if isinstance(result, PokeReturnValue) else None
            elapsed = time.monotonic() - started
            remaining = self.timeout - elapsed
            if remaining <= 0:
                raise ZondaSensorTimeout(self._timeout_message(elapsed, poke_count))
            delay = min(self._get_next_poke_interval(poke_count), remaining)
            self.log.info("Condition not met (poke %d); next poke in %.2fs", poke_count, delay)
            time.sleep(delay)

    def _get_next_poke_interval(self, poke_count: int) -> float:
        """Seconds to wait after the ``poke_count``-th unsuccessful poke (capped later by the time left).

        With ``exponential_backoff`` the wait lies in ``[b/2, b]`` for ``b = poke_interval * 2**(n-1)``:
        the same ranges Airflow's hash-based jitter gives, minus its one-second floor, which would make
        sub-second intervals impossible.
        """
        if not self.exponential_backoff:
            interval = self.poke_interval
        else:
            import random

            base = self.poke_interval * 2 ** min(poke_count - 1, _MAX_BACKOFF_EXPONENT)
            interval = random.uniform(base / 2, base)
        if self.max_wait is not None:
            interval = min(interval, self.max_wait)
        return interval

    def _timeout_message(self, elapsed: float, poke_count: int) -> str:
        return (
            f"Sensor {self.task_id!r} ({type(self).__name__}) timed out: it waited {elapsed:.1f}s "
            f"({poke_count} poke(s)), and its timeout is {self.timeout:g}s. Check that the condition it "
            "waits for can become true, raise `timeout`, or set soft_fail=True to skip instead of failing."
        )
