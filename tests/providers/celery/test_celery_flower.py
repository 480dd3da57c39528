"""`zonda celery flower` as a user runs it: a real Flower on a free loopback port, behind basic auth, showing a
real `zonda celery worker` on the real Redis; and the one-line refusal without `[celery] flower_basic_auth`."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

import scheduler_helpers as h

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BROKER = "redis://127.0.0.1:6379/11"
AUTH = "watcher:" + "p" * 24


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_flower_asks_for_auth_and_lists_a_running_worker(zonda_home: Path, postgres_url: str) -> None:
    queue = f"zf-{uuid.uuid4().hex[:10]}"
    options: dict[Any, Any] = {
        ("celery", "broker_url"): BROKER,
        ("celery", "flower_basic_auth"): AUTH,
        ("celery", "worker_log_server_host"): "127.0.0.1",
    }
    (zonda_home / "dags").mkdir(exist_ok=True)
    env = h.subprocess_env(zonda_home, postgres_url, options)
    port = _free_port()
    worker_name = f"{queue}@flowertest"
    with h.scheduler_processes() as started:
        worker = h.start_process(
            [sys.executable, "-m", "zonda", "celery", "worker", "-q", queue, "-c", "1", "--hostname", worker_name],
            env,
            zonda_home / "worker.log",
        )
        started.append(worker)
        flower = h.start_process(
            [sys.executable, "-m", "zonda", "celery", "flower", "--port", str(port)], env, zonda_home / "flower.log"
        )
        started.append(flower)
        h.wait_for(lambda: " ready." in worker.output() or worker.proc.poll() is not None, 60, what="worker ready")
        h.wait_for(lambda: "Visit me" in flower.output() or flower.proc.poll() is not None, 60, what="flower up")
        assert worker.proc.poll() is None and flower.proc.poll() is None, flower.output() + worker.output()
        assert f"Visit me at http://127.0.0.1:{port}" in flower.output()
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/")[0] == 401
        assert _get(base + "/api/workers", "watcher:wrong-password")[0] == 401
        assert _get(base + "/", AUTH)[0] == 200

        def listed() -> bool:
            status, body = _get(base + "/api/workers?refresh=1", AUTH)
            return status == 200 and worker_name in json.loads(body or b"{}")

        h.wait_for(listed, 30, interval=0.5, what="the worker listed by Flower")
        assert AUTH.split(":")[1] not in flower.output()


def test_flower_refuses_to_start_without_basic_auth(zonda_home: Path) -> None:
    env = h.subprocess_env(zonda_home, f"sqlite:///{zonda_home / 'zonda.db'}", {("celery", "broker_url"): BROKER})
    shown = subprocess.run(
        [sys.executable, "-m", "zonda", "celery", "flower", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode != 0
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1 and "flower_basic_auth" in lines[0] and "refuses to start" in lines[0], shown.stderr


@pytest.mark.parametrize("value", ["admin", "admin:", ":secret", "a:b,entry-without-a-colon"])
def test_a_malformed_basic_auth_names_the_entry(tmp_path: Path, value: str) -> None:
    from zonda.config import load_settings
    from zonda.exceptions import ZondaConfigError
    from zonda_celery.flower_command import basic_auth

    settings = load_settings(tmp_path, {"ZONDA__CELERY__FLOWER_BASIC_AUTH": value})
    with pytest.raises(ZondaConfigError, match=r"flower_basic_auth entry \d is not user:password"):
        basic_auth(settings)
