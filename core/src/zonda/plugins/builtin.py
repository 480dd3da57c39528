"""Zonda's built-in features, registered through the same hooks third-party plugins use."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("zonda")


@hookimpl(trylast=True)
def zonda_task_log_handlers() -> dict[str, str]:
    return {"file": "zonda.runner.logs:capture_attempt_log"}
