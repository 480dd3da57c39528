"""Exceptions users raise from tasks and meet from the framework.

Every error Zonda raises about user input derives from :class:`ZondaException` and says what is wrong and how
to fix it, so a CLI can print the message alone instead of a traceback.
"""

from __future__ import annotations


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


class DagNotFound(ZondaException):
    """No DAG with this id was found."""


class TaskNotFound(ZondaException):
    """No task with this id exists in the DAG."""


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


class ConnectionNotFound(ZondaException):
    """No connection with this id exists in any of the places looked in."""


class PolicyViolation(ZondaException):
    """A ``dag_policy`` or ``task_policy`` rejected a DAG; the file becomes an import error."""


class PluginError(ZondaException):
    """A plugin could not be loaded or used."""
