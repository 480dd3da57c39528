"""The DAG processor: DAG files in, serialized DAGs and import errors in the metastore out.

User code is imported only in short-lived forked children; the processor (and so the scheduler and the web
server that read what it writes) never imports it. See :mod:`zonda.dag_processing.processor`.

New DAGs start *unpaused* unless the DAG says ``is_paused_upon_creation=True``. Airflow pauses new DAGs by
default (``dags_are_paused_at_creation``); Zonda does not, so that ``zonda standalone`` runs the example DAGs
without a first round of clicking "unpause".
"""

from __future__ import annotations

from zonda.dag_processing.parsing import ParsedDag, ParseResult, parse_file
from zonda.dag_processing.processor import DagProcessor, ProcessorReport
from zonda.dag_processing.writer import DagWriter, WriteOutcome

__all__ = ["DagProcessor", "DagWriter", "ParseResult", "ParsedDag", "ProcessorReport", "WriteOutcome", "parse_file"]
