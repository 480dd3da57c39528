"""Typed operations over the metastore, shared by the CLI, the daemons and (later) the web server and REST API.

Each module holds one concept: :mod:`~zonda.operations.transitions` is the state machine of task instances and
DAG runs and the only code that writes their state; the others (``dags``, ``dag_runs``, ``task_instances``,
``task_instances_read``, ``pools``, ``connections``, ``variables``, ``import_errors``, ``logs``, ``why``, ``users``,
``audit``, ``health``...) are what a user asks for, built on those transitions. A caller parses its input, calls
an operation and presents the result; it never writes SQL of its own.

Operations take an SQLAlchemy engine (and the settings when they need configured limits), return frozen
dataclasses, and raise :class:`~zonda.exceptions.OperationError` subclasses with a one-line message:
:class:`~zonda.exceptions.NotFound` (HTTP 404), :class:`~zonda.exceptions.Conflict` (HTTP 409); anything else
derived from :class:`~zonda.exceptions.ZondaException` is bad input (HTTP 400).

Importing this package imports nothing: each module is imported by the command that needs it.
"""
