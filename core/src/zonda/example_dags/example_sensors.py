"""``example_sensors``: waiting for conditions with PythonSensor, FileSensor, TimeDeltaSensor and ``@task.sensor``."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from zonda import DAG, task
from zonda.sensors import FileSensor, PokeReturnValue, PythonSensor, TimeDeltaSensor
from zonda.trigger_rule import TriggerRule

#: Pokes seen per (dag_id, run_id, task_id, try): lets a sensor "become true" after a few pokes.
_POKES: Counter[tuple[str, str, str, int]] = Counter()


def _count_poke(ti: Any) -> int:
    key = (ti.dag_id, ti.run_id, ti.task_id, ti.try_number)
    _POKES[key] += 1
    return _POKES[key]


def _ready_after_three_pokes(ti: Any) -> bool:
    return _count_poke(ti) >= 3


def _never_ready() -> bool:
    return False


def _landing_folder(conf: Any, ds: str) -> Path:
    home = getattr(conf, "home", None) or Path(os.environ.get("ZONDA_HOME") or "~/zonda").expanduser()
    return Path(home) / "tmp" / "example_sensors" / ds


DOC_MD = """
# Sensors

A sensor is an operator that waits: it calls `poke(context)` every `poke_interval` seconds until it returns
true, and fails with `ZondaSensorTimeout` (no retries) once `timeout` seconds have passed, or ends
**skipped** instead when `soft_fail=True`. All waits here are sub-second so the DAG runs in about a second.

| task | shows |
|---|---|
| `wait_for_pokes` | `PythonSensor`, `poke_interval=0.1`: true on the third poke |
| `write_file` → `wait_for_file` | `FileSensor` waiting for the file an upstream task writes (its path comes by XCom) |
| `wait_forever` | `soft_fail=True, timeout=0.5`: the condition never holds, so the task ends **skipped** |
| `wait_after_interval` | `TimeDeltaSensor`: waits until 1 s after the data interval's end (a past date passes at once) |
| `wait_for_value` | `@task.sensor` returning `PokeReturnValue(is_done, xcom_value)`: the value becomes its XCom |
| `summary` | `trigger_rule="none_failed"`: runs although `wait_forever` was skipped |

`zonda dags test example_sensors` with no date runs "today", whose data interval has not ended yet, so
`wait_after_interval` gives up after its 2 s `timeout` and, with `soft_fail=True`, ends skipped.
"""

with DAG(
    "example_sensors",
    description="PythonSensor, FileSensor, TimeDeltaSensor, soft_fail and PokeReturnValue",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    doc_md=DOC_MD,
) as dag:
    wait_for_pokes = PythonSensor(
        task_id="wait_for_pokes",
        python_callable=_ready_after_three_pokes,
        poke_interval=0.1,
        timeout=10,
    )

    @task
    def write_file(conf: Any = None, ds: str | None = None) -> str:
        """Stands in for an upstream system dropping a file; returns its path for the sensor."""
        folder = _landing_folder(conf, ds or "unknown")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "ready.csv"
        path.write_text("id,value\n1,42\n", encoding="utf-8")
        return str(path)

    file_path = write_file()
    wait_for_file = FileSensor(
        task_id="wait_for_file",
        filepath=file_path,  # an XComArg: resolved to the path write_file returned
        poke_interval=0.1,
        timeout=10,
    )

    wait_forever = PythonSensor(
        task_id="wait_forever",
        python_callable=_never_ready,
        poke_interval=0.1,
        timeout=0.5,
        soft_fail=True,
    )

    wait_after_interval = TimeDeltaSensor(
        task_id="wait_after_interval",
        delta=timedelta(seconds=1),
        poke_interval=0.1,
        timeout=2,
        soft_fail=True,
    )

    @task.sensor(poke_interval=0.1, timeout=10)
    def wait_for_value(ti: Any = None) -> PokeReturnValue:
        """Done on the second poke, handing a value to downstream tasks."""
        pokes = _count_poke(ti)
        return PokeReturnValue(is_done=pokes >= 2, xcom_value={"rows": 42, "pokes": pokes})

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def summary(path: str, value: dict[str, Any]) -> str:
        return f"file {Path(path).name} and {value['rows']} rows after {value['pokes']} pokes"

    found = wait_for_value()
    done = summary(file_path, found)
    [wait_for_pokes, wait_for_file, wait_forever, wait_after_interval] >> done
