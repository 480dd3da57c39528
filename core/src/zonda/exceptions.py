"""Exceptions users raise from tasks and meet from the framework.

Every error Zonda raises about user input derives from :class:`ZondaException` and says what is wrong and how
to fix it, so a CLI can print the message alone instead of a traceback.
"""

from __future__ import annotations

from typing import Any


class ZondaException(Exception):
    """Base class of every Zonda error."""


class ZondaConfigError(ZondaException):
    """A configuration value is missing or malformed."""


class DagDefinitionError(ZondaException):
    """A DAG or task is defined wrongly: bad schedule, cycle, duplicate task id, unknown trigger rule..."""


class DagCycleError(DagDefinitionError):
    """The task dependencies form a cycle."""


class DuplicateTaskIdError(DagDefinitionError):
    """Two tasks in one DAG share a task id."""


class ParamValidationError(ZondaException):
    """A DAG param or a trigger conf value does not match its declared type."""


class OperationError(ZondaException):
    """An operation over the metastore (:mod:`zonda.operations`) was refused: bad input or a state that does not
    allow it. The message is one line that names the problem and the fix. The API maps it to HTTP 400."""


class NotFound(OperationError):
    """What an operation was asked about does not exist (HTTP 404)."""


class Conflict(OperationError):
    """The thing exists but its current state forbids the operation, e.g. deleting a DAG whose tasks are running
    or creating a run id that is taken (HTTP 409)."""


class DagNotFound(NotFound):
    """No DAG with this id was found."""


class TaskNotFound(NotFound):
    """No task with this id exists in the DAG."""


class TaskLogNotFound(ZondaException):
    """The task-log handler has no lines for this try (it has not started, or its log was removed)."""


class ZondaSkipException(ZondaException):
    """Raise inside a task to end it as *skipped*."""


class ZondaFailException(ZondaException):
    """Raise inside a task to fail it at once, without the retries it would otherwise get."""


class ZondaTaskTimeout(ZondaException):
    """The task ran longer than its ``execution_timeout``."""


class ZondaTaskTerminated(ZondaException):
    """The task process was asked to stop (SIGTERM): a shutdown, a kill from the UI, or lost ownership."""


class ZondaSensorTimeout(ZondaFailException):
    """A sensor waited longer than its ``timeout``. Not retried, like Airflow's ``AirflowSensorTimeout``."""


class XComSizeError(ZondaException):
    """An XCom value is larger than ``[xcom] max_size``."""


class XComSerializationError(ZondaException):
    """An XCom value cannot be represented as JSON."""


class TemplateRenderError(ZondaException):
    """A Jinja template failed to render (undefined name, sandbox violation, syntax error)."""


class MetastoreError(ZondaException):
    """The metastore is unreachable or its schema is not the one this Zonda expects."""


class ConnectionNotFound(NotFound):
    """No connection with this id exists in any of the places looked in."""


class VariableNotFound(ZondaException, KeyError):
    """No variable with this key exists in any of the places looked in. A ``KeyError`` too, as in Airflow, so
    ``except KeyError`` around ``Variable.get`` keeps working."""

    def __str__(self) -> str:
        # KeyError's str() would quote the whole message.
        return str(self.args[0]) if self.args else ""


class PolicyViolation(ZondaException):
    """A ``dag_policy`` or ``task_policy`` rejected a DAG; the file becomes an import error."""


class PluginError(ZondaException):
    """A plugin could not be loaded or used."""


class TaskDeferred(BaseException):
    """Raised by :meth:`BaseOperator.defer`: suspend the task until ``trigger`` fires, then call ``method_name``.

    A ``BaseException`` (as in Airflow) so that a task's own ``except Exception`` cannot swallow it. The
    runner catches it: under a scheduler the task instance becomes *deferred* and frees its worker slot while a
    triggerer runs the trigger; in process (``zonda dags test``) the trigger runs inline. When it fires, the
    task resumes in the same try with ``getattr(operator, method_name)(context, event=payload, **kwargs)``.
    ``timeout`` (a timedelta or seconds) bounds the wait; when it passes the task fails.
    """

    def __init__(self, trigger: object, method_name: str, kwargs: dict | None = None, timeout: object = None) -> None:
        super().__init__(trigger, method_name, kwargs, timeout)
        self.trigger = trigger
        self.method_name = method_name
        self.kwargs = dict(kwargs or {})
        self.timeout = timeout

    def __str__(self) -> str:
        return f"deferred on {self.trigger!r}, resuming with {self.method_name}()"


class TriggerError(ZondaException):
    """A trigger cannot be serialized or loaded, raised while running, or its ``timeout`` passed."""


class TaskRescheduled(BaseException):
    """A reschedule-mode sensor hands its worker slot back until ``reschedule_date``; it resumes with
    ``method_name(context, **kwargs)`` in the same try."""

    def __init__(self, reschedule_date: Any, method_name: str, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(f"rescheduled until {reschedule_date}")
        self.reschedule_date = reschedule_date
        self.method_name = method_name
        self.kwargs = dict(kwargs or {})
