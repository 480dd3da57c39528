"""Decide a task's fate from the states of its upstream task instances, with Airflow's semantics.

Two questions are answered in order. First: do the upstream states already *settle* the task without running it
(``upstream_failed`` or ``skipped``; this is how skips propagate through ``all_success``)? Second: if not, is
the rule satisfied so the task may run now, or must it wait for more upstream tasks to finish?
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from zonda.state import TaskInstanceState as S
from zonda.trigger_rule import TriggerRule as TR


class Decision(StrEnum):
    WAIT = "wait"
    RUN = "run"
    SKIP = "skipped"
    UPSTREAM_FAILED = "upstream_failed"


@dataclass(frozen=True)
class UpstreamCounts:
    upstream: int
    success: int = 0
    skipped: int = 0
    failed: int = 0
    upstream_failed: int = 0
    removed: int = 0
    #: Among the upstream instances, those of setup tasks (for ``all_done_setup_success``).
    setups: int = 0
    setup_success: int = 0
    setup_skipped: int = 0

    @property
    def done(self) -> int:
        return self.success + self.skipped + self.failed + self.upstream_failed + self.removed

    @classmethod
    def from_states(cls, states: Iterable[S | str | None]) -> UpstreamCounts:
        counts = dict.fromkeys(("success", "skipped", "failed", "upstream_failed", "removed"), 0)
        total = 0
        for state in states:
            total += 1
            key = str(state) if state is not None else "none"
            if key in counts:
                counts[key] += 1
        return cls(upstream=total, **counts)

    def with_setups(self, setup_states: Iterable[S | str | None]) -> UpstreamCounts:
        """These counts plus how many upstream instances are setups, and how many of those succeeded / skipped."""
        states = [str(state) for state in setup_states]
        return replace(
            self,
            setups=len(states),
            setup_success=states.count(S.SUCCESS.value),
            setup_skipped=states.count(S.SKIPPED.value),
        )


def evaluate(rule: TR, c: UpstreamCounts) -> Decision:
    """What happens to a task with trigger ``rule`` given upstream counts ``c``."""
    if c.upstream == 0 or rule is TR.ALWAYS:
        return Decision.RUN
    settled = _settled_state(rule, c)
    if settled is not None:
        return settled
    return Decision.RUN if _satisfied(rule, c) else Decision.WAIT


def _settled_state(rule: TR, c: UpstreamCounts) -> Decision | None:
    all_done = c.done >= c.upstream
    failures = c.failed + c.upstream_failed
    if rule is TR.ALL_SUCCESS:
        if failures:
            return Decision.UPSTREAM_FAILED
        if c.skipped:
            return Decision.SKIP
    elif rule is TR.ALL_FAILED:
        if c.success or c.skipped:
            return Decision.SKIP
    elif rule is TR.ONE_SUCCESS:
        if all_done and c.done == c.skipped:
            return Decision.SKIP
        if all_done and c.success == 0:
            return Decision.UPSTREAM_FAILED
    elif rule is TR.ONE_FAILED:
        if all_done and not failures:
            return Decision.SKIP
    elif rule is TR.ONE_DONE:
        if all_done and not (c.failed or c.success):
            return Decision.SKIP
    elif rule is TR.NONE_FAILED:
        if failures:
            return Decision.UPSTREAM_FAILED
    elif rule is TR.NONE_FAILED_MIN_ONE_SUCCESS:
        if failures:
            return Decision.UPSTREAM_FAILED
        if c.skipped == c.upstream:
            return Decision.SKIP
    elif rule is TR.NONE_SKIPPED:
        if c.skipped:
            return Decision.SKIP
    elif rule is TR.ALL_SKIPPED:
        if c.success or failures:
            return Decision.SKIP
    elif rule is TR.ALL_DONE_SETUP_SUCCESS:
        # A teardown: skipped when all its setups were, upstream_failed when none of them succeeded.
        if all_done and c.setups and c.setup_skipped >= c.setups:
            return Decision.SKIP
        if all_done and c.setups and c.setup_success == 0:
            return Decision.UPSTREAM_FAILED
    elif rule is TR.ALL_DONE_MIN_ONE_SUCCESS:
        # Skipped upstreams do not count as "done" for this rule.
        if c.skipped:
            return Decision.SKIP
        if c.success + failures + c.removed >= c.upstream and c.success == 0:
            return Decision.UPSTREAM_FAILED
    return None


def _satisfied(rule: TR, c: UpstreamCounts) -> bool:
    all_done = c.done >= c.upstream
    failures = c.failed + c.upstream_failed
    if rule is TR.ALL_SUCCESS:
        return c.success + c.removed >= c.upstream
    if rule is TR.ALL_FAILED:
        return failures + c.removed >= c.upstream
    if rule in (TR.ALL_DONE, TR.ALL_DONE_SETUP_SUCCESS):
        return all_done
    if rule is TR.ALL_DONE_MIN_ONE_SUCCESS:
        return all_done and c.success > 0
    if rule is TR.ALL_SKIPPED:
        return c.skipped + c.removed >= c.upstream
    if rule is TR.ONE_SUCCESS:
        return c.success > 0
    if rule is TR.ONE_FAILED:
        return failures > 0
    if rule is TR.ONE_DONE:
        return c.success + c.failed > 0
    if rule in (TR.NONE_FAILED, TR.NONE_FAILED_MIN_ONE_SUCCESS):
        return c.success + c.skipped + c.removed >= c.upstream
    if rule is TR.NONE_SKIPPED:
        return all_done and c.skipped == 0
    return True
