"""``zonda dags port PATH... [--out DIR | --in-place]``: rewrite Airflow DAG files for Zonda.

Parse, call :func:`zonda.porting.files.port_paths`, print: one line per file, then ``file:line: reason`` for each
thing left to port by hand. Exit status 1 when something is left, so a script notices.
"""

from __future__ import annotations

import argparse
import sys

from zonda.cli._common import command


def register(subs: argparse._SubParsersAction) -> None:
    port = command(
        subs,
        "port",
        _port,
        "Rewrite Airflow DAG files to Zonda's imports and names (dry run unless --out or --in-place)",
    )
    port.add_argument("paths", nargs="+", metavar="PATH", help="DAG files or folders of them")
    where = port.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DIR", help="Write the ported files under DIR (the originals stay)")
    where.add_argument("--in-place", action="store_true", help="Rewrite the files where they are")


def _port(args: argparse.Namespace) -> int:
    from zonda.porting.files import port_paths

    reports = port_paths(args.paths, out=args.out, in_place=args.in_place)
    dry = args.out is None and not args.in_place
    for report in reports:
        status = "changed" if report.changed else "unchanged"
        if report.problems:
            status += f", {len(report.problems)} left to port by hand"
        where = f" -> {report.written}" if report.written is not None and report.written != report.path else ""
        print(f"{report.path}: {status}{where}")
    left = [(report.path, line, reason) for report in reports for line, reason in report.problems]
    for path, line, reason in left:
        print(f"{path}:{line}: {reason}", file=sys.stderr)
    changed = sum(report.changed for report in reports)
    print(
        f"{len(reports)} file(s), {changed} {'would change' if dry else 'changed'}, "
        f"{len(left)} thing(s) left to port by hand{' (dry run: nothing written)' if dry else ''}"
    )
    return 1 if left else 0
