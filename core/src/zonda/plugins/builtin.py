"""Zonda's built-in features, registered through the same hooks third-party plugins use."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("zonda")


@hookimpl(trylast=True)
def zonda_task_log_handlers() -> dict[str, str]:
    return {"file": "zonda.runner.logs:capture_attempt_log"}


@hookimpl(trylast=True)
def zonda_executors() -> dict[str, str]:
    return {
        "SequentialExecutor": "zonda.executors.local:SequentialExecutor",
        "LocalExecutor": "zonda.executors.local:LocalExecutor",
    }
