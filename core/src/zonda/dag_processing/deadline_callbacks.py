"""Running a missed deadline's callback in the DAG processor's child, where the DAG file is loaded.

The context is the one a DAG-run callback gets (``dag``, ``dag_run``, ``run_id``, ``params``, ``ds``...; see
:func:`zonda.runner.dag_runner.call_dag_callbacks`) plus ``deadline``: the alert's name, reference, interval and the
moment that was missed, and ``reason`` = ``"deadline_missed"``. A callback that raises is logged with its traceback;
it is not retried, as with every other callback.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def run_deadline_callback(settings: Any, dag: Any, run: Any, store: Any, request: dict[str, Any]) -> None:
    from zonda.context import build_context
    from zonda.runner.dag_runner import InProcessDagRunner

    index = int(request["map_index"])
    alerts = getattr(dag, "deadline", None) or []
    if not 0 <= index < len(alerts):
        log.warning(
            "DAG %s has no deadline alert #%s any more (the file changed); the missed deadline of run %s is dropped",
            dag.dag_id,
            index,
            run.run_id,
        )
        return
    alert = alerts[index]
    params = dag.params.resolve(run.conf)
    env = InProcessDagRunner(dag, store, settings=settings, log_folder=settings.log_folder).make_environment(params)
    context = build_context(
        dag=dag, task=None, dag_run=run, ti=None, params=params, settings=settings, macros=env.macros
    )
    context["reason"] = "deadline_missed"
    context["deadline"] = {
        "name": alert.name,
        "reference": alert.reference.kind,
        "interval": alert.interval,
        "deadline_at": datetime.fromisoformat(request["message"]) if request.get("message") else None,
    }
    log.info("DAG run %s.%s missed deadline alert #%s; running its callback", dag.dag_id, run.run_id, index)
    try:
        alert.callback(context)
    except Exception:
        log.exception("the deadline callback of DAG %s raised; the run's state is unchanged", dag.dag_id)
    with contextlib.suppress(Exception):
        store.close()
