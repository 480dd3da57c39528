"""The application layer: typed operations over the metastore that the CLI, the daemons, the web UI and the API
share, so each of them only parses input, calls an operation and presents the result.

One module per concept (``dags``, ``dag_runs``, ``task_instances_read``, ``pools``, ``connections``,
``import_errors``, ``logs``, ``why``...). Operations take an SQLAlchemy engine (and the settings when they need
configured limits), return frozen dataclasses, and raise :class:`~zonda.exceptions.OperationError` subclasses
with a one-line message: :class:`~zonda.exceptions.NotFound` (HTTP 404), :class:`~zonda.exceptions.Conflict`
(HTTP 409), anything else derived from :class:`~zonda.exceptions.ZondaException` is bad input (HTTP 400).

Importing this package imports nothing: each module is imported by the command that needs it.
"""
