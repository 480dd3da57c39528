"""Benchmark DAG ``bench_fanout200``: 1 -> 200 -> 1 no-op PythonOperator tasks (202 tasks).

Equivalent to ``bench_fan200`` in the peers' Airflow DAG file (``../shared/peers/dags/bench_dags.py``,
beside the repository).
"""

import os
from datetime import datetime

from zonda import DAG, chain
from zonda.operators import PythonOperator

N_FAN = int(os.environ.get("BENCH_N_FAN", "200"))


def noop():
    return None


with DAG(
    "bench_fanout200",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=N_FAN + 2,
    tags=["bench"],
) as dag:
    start = PythonOperator(task_id="start", python_callable=noop)
    mids = [PythonOperator(task_id=f"m{i:03d}", python_callable=noop) for i in range(N_FAN)]
    end = PythonOperator(task_id="end", python_callable=noop)
    chain(start, mids, end)
