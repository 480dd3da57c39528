"""The task instance page and its log: server time of the page and of the log endpoint (goal <= 200 ms), the
first screen of a 100,000-line log (payload and time, goal <= 500 ms on screen), and how long a line written to
a running try's log takes to reach a reader of the live stream (goal <= 1 s).

    python3 bench/bench_web_task.py [--repeat 20]

Server times are measured through Flask's test client (no network); the live-line latency through the real
WSGI server on loopback. Prints figures only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import REPO, reexec_in_venv

LINES = 100_000


def _median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    reexec_in_venv(__file__)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests" / "ui"))
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZONDA_HOME"] = home
        os.environ["ZONDA__CORE__LOAD_EXAMPLES"] = "false"
        os.environ["ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "false"  # runs are triggered
        from task_views_seed import RUN_ID, seed_gantt_run

        from zonda.config import load_settings
        from zonda.metastore.db import Metastore
        from zonda.operations.users import create_user
        from zonda.runner.logs import attempt_log_path
        from zonda.web import create_app

        store = Metastore(f"sqlite:///{home}/bench.db")
        store.init()
        settings = load_settings(Path(home)).with_overrides({("database", "sql_alchemy_conn"): store.url})
        seed_gantt_run(store.engine, c_state="running")
        create_user(store.engine, "bench", "Viewer", "bench password 1234", actor="(bench)")
        app = create_app(settings, engine=store.engine)
        client = app.test_client()
        token_page = client.get("/login").text
        token = token_page.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": "bench", "password": "bench password 1234", "csrf_token": token})

        base = f"/dags/gantt/runs/{RUN_ID}/tasks"
        small = attempt_log_path(settings.log_folder, "gantt", RUN_ID, "b", -1, 2)
        small.parent.mkdir(parents=True, exist_ok=True)
        small.write_text("".join(f"line {n} of a short log\n" for n in range(2000)), encoding="utf-8")
        big = attempt_log_path(settings.log_folder, "gantt", RUN_ID, "c", -1, 1)
        big.parent.mkdir(parents=True, exist_ok=True)
        big.write_text(
            "".join(
                f"2026-01-01 12:00:00 INFO \x1b[32mline {n}\x1b[0m of a long log with some text\n" for n in range(LINES)
            ),
            encoding="utf-8",
        )
        assert client.get(f"{base}/b").status_code == 200
        page_ms = _median_ms(lambda: client.get(f"{base}/b"), args.repeat)
        log_ms = _median_ms(lambda: client.get(f"{base}/b/logs/2"), args.repeat)
        print(f"task page: {page_ms:.1f} ms server time (median of {args.repeat})")
        print(f"log endpoint (2,000-line log, last 500 lines): {log_ms:.1f} ms")
        print(f"click to log (page + log endpoint): {page_ms + log_ms:.1f} ms  (goal <= 200 ms)")
        first = client.get(f"{base}/c/logs/1")
        big_ms = _median_ms(lambda: client.get(f"{base}/c/logs/1"), max(args.repeat // 2, 3))
        print(
            f"100,000-line log, first screen: {big_ms:.1f} ms server time, {len(first.data) / 1024:.1f} KB payload "
            f"({big.stat().st_size / 1024 / 1024:.1f} MB file)  (goal <= 500 ms on screen)"
        )
        search_ms = _median_ms(lambda: client.get(f"{base}/c/logs/1?q=line 99999&count=1"), 3)
        print(f"100,000-line log, search: {search_ms:.1f} ms")

        from zonda.web.server import WebServer

        server = WebServer(app, "127.0.0.1", 0, threads=4)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
        thread.start()
        try:
            url = urlsplit(server.url)
            cookie = "; ".join(f"{c.key}={c.value}" for c in client._cookies.values())
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            connection.request("GET", f"{base}/c/logs/1/stream?line={LINES}", headers={"Cookie": cookie})
            response = connection.getresponse()
            latencies = []
            with big.open("a", encoding="utf-8") as handle:
                for n in range(10):
                    marker = f"live line {n}"
                    time.sleep(0.05 + 0.037 * n)  # not in step with the server's poll
                    written = time.perf_counter()
                    handle.write(marker + "\n")
                    handle.flush()
                    for _ in range(1000):
                        line = response.readline().decode()
                        if marker in line:
                            latencies.append((time.perf_counter() - written) * 1000)
                            break
            connection.close()
            print(
                f"live log line to reader: median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms "
                f"over {len(latencies)} lines  (goal <= 1000 ms)"
            )
        finally:
            stop.set()
            thread.join(10)
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
