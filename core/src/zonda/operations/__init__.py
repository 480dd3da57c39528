"""Typed operations over the metastore, shared by the CLI, the daemons and (later) the web server and REST API.

Each module holds one concept: :mod:`~zonda.operations.transitions` is the state machine of task instances and
DAG runs and the only code that writes their state; the others (clearing and marking task instances, setting a
run's state, ...) are what a user asks for, built on those transitions. A caller parses its input, calls an
operation and presents the result; it never writes SQL of its own.
"""
