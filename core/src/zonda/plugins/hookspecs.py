"""Every hook a Zonda plugin can implement, in one place, grouped by lifecycle.

Implement a hook with ``@zonda.hookimpl`` on a module-level function (or a method) named like the spec, taking
any subset of the spec's arguments. Zonda validates each plugin when it registers: an unknown hook name or an
argument the spec does not have is an error naming the plugin, never a silently ignored function.

Calls are isolated: if one plugin's implementation raises, the error is logged with the plugin's name and the
other implementations still run. Hooks marked *first result* stop at the first implementation returning
something other than ``None``; ``tryfirst``/``trylast`` on ``hookimpl`` order them as in pytest.

Zonda's own built-in features register through these same hooks in :mod:`zonda.plugins.builtin` (the file
task-log handler, the SequentialExecutor and the LocalExecutor), so anything core can do, a plugin can too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from zonda.dag_definition import DAG
    from zonda.operators.base import BaseOperator

hookspec = pluggy.HookspecMarker("zonda")

# ==========================================================================================================
# Task instance listeners: called by the process that runs the task (the `zonda dags test` / `tasks test`
# process, a LocalExecutor worker process, or a Celery worker), after the state is recorded.
# ==========================================================================================================


@hookspec
def on_task_instance_running(previous_state: str | None, task_instance: Any) -> None:
    """A task instance started a try (state ``running``). ``task_instance.try_number`` is the try."""


@hookspec
def on_task_instance_success(previous_state: str | None, task_instance: Any) -> None:
    """A task instance finished successfully."""


@hookspec
def on_task_instance_failed(
    previous_state: str | None, task_instance: Any, error: BaseException | None, will_retry: bool
) -> None:
    """A try of a task instance failed. ``will_retry`` says whether another try follows (state
    ``up_for_retry``) or the task instance is now ``failed``."""


@hookspec
def on_task_instance_skipped(previous_state: str | None, task_instance: Any) -> None:
    """A task instance ended skipped, because it raised ZondaSkipException or a branch/short-circuit or its
    trigger rule skipped it."""


# ==========================================================================================================
# DAG run listeners: called by the process that owns the run's state (the in-process runner today; the
# scheduler once it exists).
# ==========================================================================================================


@hookspec
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    """A DAG run started."""


@hookspec
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """A DAG run ended successfully."""


@hookspec
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    """A DAG run ended failed."""


# ==========================================================================================================
# Policies: called by whichever process loads DAG files (DAG processor, CLI, worker), for every DAG and task
# right after a file is imported. Raise ``zonda.exceptions.PolicyViolation`` (or any exception) to reject: the
# file becomes an import error naming the policy's plugin and the reason.
# ==========================================================================================================


@hookspec
def dag_policy(dag: DAG) -> None:
    """Inspect or change a DAG (e.g. require tags, set a default timeout)."""


@hookspec
def task_policy(task: BaseOperator) -> None:
    """Inspect or change a task (e.g. cap retries, route a queue)."""


@hookspec
def task_instance_mutation(task_instance: Any) -> None:
    """Change a task instance just before it is queued to run (e.g. its queue or priority)."""


# ==========================================================================================================
# Extension points: called on demand, by the process that needs the extension.
# ==========================================================================================================


@hookspec
def zonda_cli_commands() -> list[Any]:
    """Extra top-level CLI commands: a list of :class:`zonda.plugins.CliCommand`. Called by the ``zonda`` CLI
    only when the command typed is not a built-in one (so built-in commands never load plugins)."""


@hookspec
def zonda_web_views() -> list[Any]:
    """Flask blueprints (or ``(blueprint, url_prefix)`` pairs) added to the web server by its app factory."""


@hookspec
def zonda_menu_links() -> list[Any]:
    """Menu links of the web UI: dicts with ``name``, ``href`` and optional ``category``."""


@hookspec
def zonda_template_macros() -> dict[str, Any]:
    """Macros for templates, as ``{name: callable_or_value}``; a plugin's macros are reachable as
    ``macros.<name>``. Called by the process rendering templates."""


@hookspec
def zonda_secrets_backends() -> list[Any]:
    """Secrets backends (objects with ``get_connection(conn_id)`` returning a Connection or None, and optionally
    ``get_variable(key)`` returning a string or None), asked in order before the environment and the metastore.
    Called by any process looking up a connection or a variable."""


@hookspec(firstresult=True)
def zonda_xcom_backend() -> Any:
    """The XCom backend to use instead of the metastore's (first result wins). Called by task processes."""


@hookspec
def zonda_timetables() -> list[type]:
    """Timetable classes a DAG may use as ``schedule``; listed so serialized DAGs can name them."""


@hookspec
def zonda_executors() -> dict[str, str]:
    """Executors by name, as dotted paths (``"pkg.module:Class"`` of a
    :class:`~zonda.executors.base.BaseExecutor` subclass), imported only when chosen by ``core.executor``.
    Called by the scheduler, and only when the configured name is not a built-in one (built-in names are
    reserved); a plugin's name wins over a provider's manifest name, and the first plugin in hook order wins a
    name two plugins register. See :mod:`zonda.executors.resolution`."""


@hookspec
def zonda_task_log_handlers() -> dict[str, str]:
    """Task-log handlers by name, as dotted paths to :class:`zonda.runner.log_handlers.TaskLogHandler`
    subclasses, chosen by ``logging.task_log_handler`` and imported only when chosen. Called by the process
    starting a run or a task (``dags test``, a worker) and by ``zonda tasks logs``, only when the configured
    name is not the built-in ``file``. A plugin's name wins over a provider's manifest name; the first plugin
    in hook order wins a name two plugins register; ``file`` is reserved for the built-in handler."""
