"""The admin pages with many rows: server time, payload size and SQL statements per request of the Connections
(500), Variables (1,000), Pools (200), Audit log (5,000 entries, one page), Users (200) pages and the trigger form
of a DAG with 20 params and 500 past runs.

    python3 bench/bench_web_admin.py [--repeat 10]

Server times are medians through Flask's test client (no network). The statement count is every SQL statement
the request sends (the session's user lookup included). Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import reexec_in_venv

PASSWORD = "bench password 1234"


def _seed(store, settings) -> None:
    from datetime import UTC, datetime, timedelta

    from zonda.connection import Connection
    from zonda.dag_processing import DagProcessor
    from zonda.metastore import tables as t
    from zonda.operations.audit import record
    from zonda.operations.connections import import_connections
    from zonda.operations.pools import set_pool
    from zonda.operations.users import hash_password
    from zonda.operations.variables import import_variable_items

    conns = [
        Connection(
            conn_id=f"conn_{n}",
            conn_type="postgres",
            host=f"db{n}",
            login="u",
            password=f"pw{n}",
            extra={"sslmode": "require", "api_token": f"t{n}"},
        )
        for n in range(500)
    ]
    import_connections(store, settings, conns)
    items = [(f"var_{n}" if n % 10 else f"secret_key_{n}", f"value {n}") for n in range(1000)]
    import_variable_items(settings, items, source="bench", metastore=store)
    for n in range(200):
        set_pool(store.engine, f"pool_{n}", n % 16)
    with store.engine.begin() as conn:
        hashed = hash_password(PASSWORD)
        conn.execute(
            t.web_user.insert(),
            [{"username": f"user_{n}", "role": "Viewer", "password_hash": hashed} for n in range(200)],
        )
    for n in range(5000):
        record(store.engine, f"user_{n % 7}", "thing.do", f"target_{n}", {"n": n})
    params = ", ".join(f'"p{n}": Param({n}, type="integer", minimum=0, description="param {n}")' for n in range(20))
    dags = settings.dags_folder
    dags.mkdir(parents=True, exist_ok=True)
    source = [
        "from datetime import datetime",
        "from zonda import DAG, Param",
        "from zonda.operators import EmptyOperator",
        f'with DAG("bench_params", start_date=datetime(2024, 1, 1), schedule=None, params={{{params}}}):',
        '    EmptyOperator(task_id="t")',
    ]
    (dags / "bench_params.py").write_text("\n".join(source) + "\n")
    with DagProcessor(settings, store) as processor:
        report = processor.run_once(full=True)
    assert not report.errors, report.errors
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            t.dag_run.insert(),
            [
                {
                    "dag_id": "bench_params",
                    "run_id": f"manual__{n}",
                    "state": "success",
                    "run_type": "manual",
                    "logical_date": start + timedelta(hours=n),
                    "conf": f'{{"p0": {n % 9}}}',
                }
                for n in range(500)
            ],
        )


def main() -> int:
    reexec_in_venv(__file__)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZONDA_HOME"] = home
        os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
        os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
        from sqlalchemy import event

        from zonda.config import load_settings
        from zonda.metastore.db import Metastore
        from zonda.operations.users import create_user
        from zonda.web import create_app

        store = Metastore(f"sqlite:///{home}/bench.db")
        store.init()
        settings = load_settings(Path(home)).with_overrides({("database", "sql_alchemy_conn"): store.url})
        _seed(store, settings)
        create_user(store.engine, "bench", "Admin", PASSWORD, actor="(bench)")
        app = create_app(settings, engine=store.engine)
        client = app.test_client()
        token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
        statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        pages = {
            "connections (500)": "/connections",
            "variables (1,000)": "/variables",
            "pools (200)": "/pools",
            "audit log (page of 50 of 5,000)": "/audit-log",
            "users (200)": "/users",
            "trigger form (20 params, 500 runs)": "/dags/bench_params/trigger",
            "providers": "/providers",
            "plugins": "/plugins",
        }
        for label, path in pages.items():
            statements.clear()
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            count = len(statements)
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                client.get(path)
                times.append((time.perf_counter() - started) * 1000)
            print(
                f"{label:38s} {statistics.median(times):7.1f} ms server time (median of {args.repeat}), "
                f"{len(response.data) / 1024:7.1f} KB, {count} SQL statements"
            )
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
