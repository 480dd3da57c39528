"""Benchmark DAG ``bench_chain50``: 50 no-op PythonOperator tasks in a line (t000 >> t001 >> ... >> t049).

Equivalent to ``bench_chain50`` in the peers' Airflow DAG file (``../shared/peers/dags/bench_dags.py``,
beside the repository).
"""

import os
from datetime import datetime

from zonda import DAG, chain
from zonda.operators import PythonOperator

N_CHAIN = int(os.environ.get("BENCH_N_CHAIN", "50"))


def noop():
    return None


with DAG(
    "bench_chain50",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=N_CHAIN + 2,
    tags=["bench"],
) as dag:
    chain(*[PythonOperator(task_id=f"t{i:03d}", python_callable=noop) for i in range(N_CHAIN)])
