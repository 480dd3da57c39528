"""What ``zonda dags test`` prints at the end: a table of task instances and a Gantt chart."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, TextIO

from zonda.cli._common import print_table

if TYPE_CHECKING:
    from zonda.runner.dag_runner import DagRunResult

_MARKS = {"success": "█", "failed": "▓", "up_for_retry": "▒", "skipped": "·", "upstream_failed": "x"}


def _label(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def print_run_report(result: DagRunResult, out: TextIO, *, gantt_rows: int = 60) -> None:
    tis = result.task_instances
    run = result.run
    start = run.start_date
    rows = []
    for ti in tis:
        offset = (ti.start_date - start).total_seconds() if ti.start_date and start else None
        rows.append(
            [
                _label(ti.task_id, ti.map_index),
                ti.state.value,
                str(ti.try_number),
                f"{ti.duration:.3f}s" if ti.duration is not None else "",
                f"+{offset:.3f}s" if offset is not None else "",
                (ti.error or "")[:80],
            ]
        )
    print_table(rows, ["task", "state", "tries", "duration", "started", "error"], file=out)
    total = (run.end_date - run.start_date).total_seconds() if run.end_date and run.start_date else 0.0
    out.write(f"\nDAG run {run.run_id}: {run.state} in {total:.3f}s\n")
    timed = [ti for ti in tis if ti.start_date and ti.end_date]
    if not timed or total <= 0:
        return
    width = max(20, min(80, shutil.get_terminal_size((100, 20)).columns - 40))
    label_width = min(30, max(len(_label(t.task_id, t.map_index)) for t in timed))
    out.write(f"\nGantt ({total:.3f}s across {width} columns; █ success ▓ failed · skipped)\n")
    shown = timed if len(timed) <= gantt_rows else timed[: gantt_rows - 1]
    for ti in shown:
        assert ti.start_date and ti.end_date and start
        begin = int((ti.start_date - start).total_seconds() / total * width)
        end = max(begin + 1, int((ti.end_date - start).total_seconds() / total * width))
        mark = _MARKS.get(ti.state.value, "?")
        bar = " " * begin + mark * (min(end, width) - begin)
        out.write(f"{_label(ti.task_id, ti.map_index)[:label_width]:<{label_width}} |{bar:<{width}}|\n")
    if len(timed) > len(shown):
        out.write(f"... {len(timed) - len(shown)} more task instances (see the table above)\n")
