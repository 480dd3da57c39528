"""How long a failed try waits before the next one: one rule for the task runner and the scheduler."""

from __future__ import annotations


def seconds_before_retry(
    retry_delay: float, failed_try: int, *, exponential_backoff: bool, max_retry_delay: float | None
) -> float:
    """Seconds to wait after try number ``failed_try`` (1-based) failed.

    ``retry_delay`` doubles with each try when ``exponential_backoff`` is set, capped by ``max_retry_delay``.
    No random jitter: the timing is predictable and testable, and ``dags test`` waits as the scheduler does."""
    seconds = retry_delay
    if exponential_backoff:
        seconds = seconds * (2 ** max(failed_try - 1, 0))
    if max_retry_delay is not None:
        seconds = min(seconds, max_retry_delay)
    return max(seconds, 0.0)
