"""Trigger rules: when a task may run, given the states of its upstream tasks. Names and meaning are Airflow's."""

from __future__ import annotations

from enum import StrEnum


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    #: A teardown's rule: every upstream done and, when some are setups, at least one of them succeeded.
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | TriggerRule) -> TriggerRule:
        """Accept an enum member, its value, or the old name ``none_failed_or_skipped``."""
        if isinstance(value, TriggerRule):
            return value
        name = str(value)
        if name == "none_failed_or_skipped":
            return cls.NONE_FAILED_MIN_ONE_SUCCESS
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(rule.value for rule in cls)
            raise ValueError(f"unknown trigger rule {name!r}; valid rules: {valid}") from None
