"""The DAG processor: DAG files in, serialized DAGs and import errors in the metastore out.

User code is imported only in short-lived forked children; the processor (and so the scheduler and the web
server that read what it writes) never imports it. See :mod:`zonda.dag_processing.processor`.

New DAGs start *paused*, as in Airflow, unless the DAG says ``is_paused_upon_creation=False`` or
``[core] dags_are_paused_at_creation`` is false (see :mod:`zonda.pause_at_creation`).
"""

from __future__ import annotations

from zonda.dag_processing.parsing import ParsedDag, ParseResult, parse_file
from zonda.dag_processing.processor import DagProcessor, ProcessorReport
from zonda.dag_processing.writer import DagWriter, WriteOutcome

__all__ = ["DagProcessor", "DagWriter", "ParseResult", "ParsedDag", "ProcessorReport", "WriteOutcome", "parse_file"]
