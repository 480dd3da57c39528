"""Listeners that append one JSON line per task and DAG-run event, and the ``zonda events`` command.

The file is ``$ZONDA_EVENTS_FILE`` or ``$ZONDA_HOME/events.jsonl``. Each line is a small object:
``{"event": "task_success", "dag_id": ..., "task_id": ..., "map_index": ..., "try_number": ..., "at": ...}``.
Appends are single ``write`` calls on a file opened in append mode, so lines from several processes do not
interleave.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zonda import hookimpl
from zonda.plugins import CliCommand


def events_file() -> Path:
    explicit = os.environ.get("ZONDA_EVENTS_FILE")
    if explicit:
        return Path(explicit)
    home = Path(os.environ.get("ZONDA_HOME") or "~/zonda").expanduser()
    return home / "events.jsonl"


def _write(event: str, **fields: Any) -> None:
    record = {"event": event, "at": datetime.now(UTC).isoformat(), **fields}
    path = events_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def _ti_fields(ti: Any) -> dict[str, Any]:
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
    }


@hookimpl
def on_task_instance_running(task_instance: Any) -> None:
    _write("task_running", **_ti_fields(task_instance))


@hookimpl
def on_task_instance_success(task_instance: Any) -> None:
    _write("task_success", **_ti_fields(task_instance))


@hookimpl
def on_task_instance_failed(task_instance: Any, will_retry: bool) -> None:
    _write("task_failed", will_retry=will_retry, **_ti_fields(task_instance))


@hookimpl
def on_task_instance_skipped(task_instance: Any) -> None:
    _write("task_skipped", **_ti_fields(task_instance))


@hookimpl
def on_dag_run_running(dag_run: Any) -> None:
    _write("dag_run_running", dag_id=dag_run.dag_id, run_id=dag_run.run_id)


@hookimpl
def on_dag_run_success(dag_run: Any) -> None:
    _write("dag_run_success", dag_id=dag_run.dag_id, run_id=dag_run.run_id)


@hookimpl
def on_dag_run_failed(dag_run: Any) -> None:
    _write("dag_run_failed", dag_id=dag_run.dag_id, run_id=dag_run.run_id)


def _register_events(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--last", "-n", type=int, default=20, help="How many events to show (default 20)")


def _show_events(args: argparse.Namespace) -> int:
    path = events_file()
    if not path.exists():
        print(f"no events yet ({path})")
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()[-args.last :]
    for line in lines:
        event = json.loads(line)
        where = ".".join(str(event.get(k)) for k in ("dag_id", "task_id") if event.get(k) is not None)
        print(f"{event['at']}  {event['event']:<16} {where}")
    return 0


@hookimpl
def zonda_cli_commands() -> list[CliCommand]:
    return [CliCommand("events", "Show the latest task and DAG-run events", _show_events, _register_events)]
