"""Whether a DAG seen for the first time is stored paused: the one rule the DAG processor and ``dags test`` share.

Airflow pauses new DAGs unless told otherwise, so that a file landing in the DAGs folder with ``catchup=True`` and
an old ``start_date`` does not fire hundreds of runs before anyone looked at it. The DAG's own
``is_paused_upon_creation`` wins; otherwise ``[core] dags_are_paused_at_creation`` decides (default true). It
applies only when the ``dag`` row is created: pausing or unpausing later is the user's and is never overwritten.
"""

from __future__ import annotations


def paused_at_creation(dag_asks: bool | None, installation_default: bool) -> bool:
    """The ``is_paused`` a new ``dag`` row gets: the DAG's ``is_paused_upon_creation`` when it says, else the
    installation's ``dags_are_paused_at_creation``."""
    return installation_default if dag_asks is None else bool(dag_asks)
