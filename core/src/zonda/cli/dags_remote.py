"""``zonda dags trigger | list-runs --api-url URL``: the same commands against a remote installation's REST API.

The token comes from ``ZONDA_API_TOKEN`` (never a command-line argument, which other users of the machine could
read in the process list); TLS certificates are verified. The output matches the local commands', so scripts
need not care where the runs live.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.client import DagRun, ZondaClient

#: Most runs ``list-runs --api-url`` fetches (pages of :data:`PAGE`): the loop is bounded whatever the server says.
MAX_RUNS = 10_000
PAGE = 100


def add_api_url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        metavar="URL",
        help="Use the REST API of the installation at URL (e.g. https://zonda:8080) instead of the local "
        "metastore; the token comes from ZONDA_API_TOKEN",
    )


def _client(url: str) -> ZondaClient:
    from zonda.client import TOKEN_ENV, ZondaClient

    if not os.environ.get(TOKEN_ENV):
        raise ZondaException(
            f"--api-url needs a token in {TOKEN_ENV}; create one with `zonda users create-token USERNAME` on the "
            "installation and export it"
        )
    return ZondaClient(url)


def run_fields(run: DagRun) -> dict[str, Any]:
    """The local ``list-runs`` fields of a run from the API (``dag_run_id`` is ``run_id`` there)."""
    from zonda.client.models import parse_time

    raw = run.raw
    fields = {"run_id": run.dag_run_id, "state": run.state, "dag_id": run.dag_id, "run_type": run.run_type}
    for name in ("logical_date", "queued_at", "start_date", "end_date", "data_interval_start", "data_interval_end"):
        fields[name] = parse_time(raw.get(name))
    return fields


def list_runs(args: argparse.Namespace, start: Any, end: Any) -> list[dict[str, Any]]:
    """Every run of ``args.dag_id`` matching the filters, newest first, page by page (at most :data:`MAX_RUNS`)."""
    runs: list[DagRun] = []
    with _client(args.api_url) as client:
        while len(runs) < MAX_RUNS:
            page = client.list_dag_runs(
                args.dag_id,
                limit=PAGE,
                offset=len(runs),
                state=[args.state] if args.state else None,
                logical_date_gte=start,
                logical_date_lte=end,
            )
            runs.extend(page.items)
            if len(page.items) < PAGE or (page.total_entries is not None and len(runs) >= page.total_entries):
                break
    rows = [run_fields(run) for run in runs]
    rows.sort(key=lambda row: (row["logical_date"] is not None, row["logical_date"] or 0), reverse=True)
    return rows


def trigger(args: argparse.Namespace, conf: dict[str, Any], logical_date: Any) -> int:
    with _client(args.api_url) as client:
        run = client.trigger_dag_run(args.dag_id, conf, dag_run_id=args.run_id, logical_date=logical_date)
    fields = run_fields(run)
    if args.output == "json":
        fields["conf"] = run.conf
        json.dump(fields, sys.stdout, default=_iso, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"Queued DAG run {run.dag_run_id} of {args.dag_id} (logical date {_iso(fields['logical_date'])}).")
        print(f"Follow it with `zonda dags list-runs {args.dag_id} --api-url {args.api_url}`.")
    return 0


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


__all__ = ["MAX_RUNS", "add_api_url_argument", "list_runs", "run_fields", "trigger"]
