"""The Celery app the executor sends with and the workers run: JSON only, late acknowledgement.

One function builds it from Zonda's settings, so the scheduler's side and every worker agree on the broker, the
serializer and the one task they share. Nothing happens at import: the app is built (and the broker reached,
lazily, by Celery) only when a scheduler or a worker asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    from zonda.config import Settings

#: The one Celery task Zonda sends: its only argument is the workload's JSON text.
EXECUTE_TASK_NAME = "zonda.execute_workload"
#: Queue of a task whose operator names none (the operator's ``queue`` default).
DEFAULT_QUEUE = "default"
#: ``[celery] execution_timeout`` when unset: the longest a task is expected to run, in seconds.
DEFAULT_EXECUTION_TIMEOUT = 6 * 3600.0


def result_backend_url(settings: Settings) -> str:
    """``[celery] result_backend``, or by default the metastore through Celery's SQLAlchemy backend
    (``db+<metastore URL>``), so a worker needs no other service than the broker and the metastore."""
    configured = settings.get("celery", "result_backend")
    if configured:
        return str(configured)
    from zonda.metastore.engine import normalize_url

    url = normalize_url(settings.sql_alchemy_conn)
    return "db+" + url.render_as_string(hide_password=False)


def visibility_timeout(settings: Settings) -> int:
    """Seconds an unacknowledged message stays invisible on Redis before it is delivered again.

    Messages are acknowledged late (when the task ends), so this must outlast the longest task, or a long task is
    delivered twice: ``[celery] execution_timeout`` plus ``task_heartbeat_timeout`` and a margin. A redelivery
    is still harmless (the worker's claim is a compare-and-set on state and try number), only wasteful."""
    execution = float(settings.get("celery", "execution_timeout", DEFAULT_EXECUTION_TIMEOUT))
    heartbeat = float(settings.get("scheduler", "task_heartbeat_timeout"))
    return int(execution + 2 * heartbeat + 60)


#: Airflow's section of the same name: each key is passed to the broker's transport as is (e.g. Redis's
#: ``unacked_restore_interval``); a ``visibility_timeout`` there replaces the one sized from execution_timeout.
TRANSPORT_OPTIONS_SECTION = "celery_broker_transport_options"


def transport_options(settings: Settings) -> dict[str, Any]:
    """The broker transport's options: the sized :func:`visibility_timeout`, then
    ``[celery_broker_transport_options]`` (numbers given as text, as from the environment, become numbers)."""
    options: dict[str, Any] = {"visibility_timeout": visibility_timeout(settings)}
    for _option, section, key, value in settings.items():
        if section == TRANSPORT_OPTIONS_SECTION:
            options[key] = _number(value)
    return options


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def build_app(settings: Settings) -> Celery:
    """The Celery app for ``settings``, with Zonda's task registered on it."""
    from celery import Celery

    from zonda_celery.task import register_task

    app = Celery("zonda", set_as_current=False)
    app.conf.update(
        broker_url=str(settings.get("celery", "broker_url")),
        result_backend=result_backend_url(settings),
        # JSON only: a worker never unpickles what it receives (a pickle message is refused by Celery).
        accept_content=["json"],
        task_serializer="json",
        result_serializer="json",
        result_accept_content=["json"],
        # Acknowledge when the task ends, so a worker that dies mid-task gives its message back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(settings),
        task_default_queue=DEFAULT_QUEUE,
        broker_connection_retry_on_startup=True,
        # A broker that is down must not stall the scheduler's pass: a few quick retries, then the send fails
        # and the scheduler queues the instance again later (its lost-workload check).
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.1, "interval_step": 0.2},
        worker_send_task_events=True,
    )
    register_task(app)
    return app
