"""Zonda's built-in features, registered through the same hooks third-party plugins use."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("zonda")


@hookimpl(trylast=True)
def zonda_task_log_handlers() -> dict[str, str]:
    return {"file": "zonda.runner.log_handlers:FileTaskLogHandler"}


@hookimpl(trylast=True)
def zonda_executors() -> dict[str, str]:
    return {
        "SequentialExecutor": "zonda.executors.local:SequentialExecutor",
        "LocalExecutor": "zonda.executors.local:LocalExecutor",
    }
