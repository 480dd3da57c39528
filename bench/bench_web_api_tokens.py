"""API tokens and per-DAG grants: what they cost per request.

- ``GET /api/v1/version`` with a session cookie, with a Bearer token, and the token lookup alone;
- the DAGs list (``zonda.operations.dags.list_dags``) of 20,000 DAGs (two tags each) for a user without grants
  and for one whose tag and glob grants match 1 DAG in 20, on SQLite (and PostgreSQL with ``--postgres URL``).

    python3 bench/bench_web_api_tokens.py [--repeat 20] [--postgres postgresql://postgres@127.0.0.1:5432/DB]

Server times are medians through Flask's test client (no network); SQL statements are every statement the
request sends. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import reexec_in_venv

PASSWORD = "bench password 1234"
DAGS = 20_000


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _seed_dags(engine) -> None:
    from sqlalchemy import insert

    from zonda import serde
    from zonda.metastore import tables as t

    rows, tags = [], []
    for n in range(DAGS):
        dag_id = f"team{n % 20:02d}_dag_{n:05d}"
        names = [f"team{n % 20:02d}", f"kind{n % 7}"]
        rows.append({"dag_id": dag_id, "is_active": True, "is_paused": False, "tags": serde.dumps(names)})
        tags.extend({"dag_id": dag_id, "name": name} for name in names)
    with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(t.dag), rows[start : start + 1000])
        for start in range(0, len(tags), 1000):
            conn.execute(insert(t.dag_tag), tags[start : start + 1000])


def _bench_grants(label: str, url: str, repeat: int) -> None:
    from zonda.metastore.db import Metastore
    from zonda.operations.dag_grants import add_grant
    from zonda.operations.dags import list_dags
    from zonda.operations.users import create_user, find_user_by_id

    store = Metastore(url)
    store.init()
    _seed_dags(store.engine)
    everyone = create_user(store.engine, "all", "Viewer", PASSWORD, actor="(bench)")
    narrowed = create_user(store.engine, "some", "Viewer", PASSWORD, actor="(bench)")
    add_grant(store.engine, "some", "tag", "team03", actor="(bench)")
    add_grant(store.engine, "some", "glob", "team03_*", actor="(bench)")
    for who, user in (("no grants", everyone), ("tag+glob grants", narrowed)):
        loaded = find_user_by_id(store.engine, user.id)
        shown = len(list_dags(store.engine, recent=0, visible_to=loaded))
        ms = _median_ms(lambda loaded=loaded: list_dags(store.engine, recent=0, visible_to=loaded), repeat)
        print(f"{label:10s} DAG list of {DAGS:,}, {who:16s}: {ms:8.1f} ms, {shown:,} DAGs shown")
    store.dispose()


def main() -> int:
    reexec_in_venv(__file__)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL for the DAG list figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZONDA_HOME"] = home
        os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
        os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
        from sqlalchemy import event

        from zonda.config import load_settings
        from zonda.metastore.db import Metastore
        from zonda.operations.api_tokens import authenticate_token, create_token
        from zonda.operations.users import create_user
        from zonda.web import create_app

        store = Metastore(f"sqlite:///{home}/bench.db")
        store.init()
        settings = load_settings(Path(home)).with_overrides(
            {("database", "sql_alchemy_conn"): store.url, ("api", "rate_limit_per_minute"): 0}
        )
        create_user(store.engine, "bench", "Viewer", PASSWORD, actor="(bench)")
        token = create_token(store.engine, "bench", days=1, actor="(bench)").token
        app = create_app(settings, engine=store.engine)
        session = app.test_client()
        csrf = session.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
        session.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": csrf})
        bearer = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        for label, request in (
            ("session cookie", lambda: session.get("/api/v1/version")),
            ("bearer token", lambda: bearer.get("/api/v1/version", headers=headers)),
        ):
            assert request().status_code == 200
            statements.clear()
            request()
            count = len(statements)
            ms = _median_ms(request, args.repeat)
            print(f"GET /api/v1/version, {label:15s}: {ms:6.2f} ms server time, {count} SQL statements")
        ms = _median_ms(lambda: authenticate_token(store.engine, token), args.repeat)
        print(f"token lookup alone (one SELECT, SHA-256, constant-time compare): {ms:6.2f} ms")
        store.dispose()
        _bench_grants("SQLite", f"sqlite:///{home}/grants.db", args.repeat)
        if args.postgres:
            _bench_grants("PostgreSQL", args.postgres, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
