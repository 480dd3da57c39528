"""The first hour with Zonda, end to end in real processes: ``python3 dev.py`` runs the command as written and
a signal to its pid stops the whole installation; the home's folders exist after the first start.

Processes of one installation are found by walking ``/proc`` for every process whose environment names the
test's own ``ZONDA_HOME`` (inherited by the scheduler, its workers, task processes and what tasks start, even
those in a session of their own), so nothing escapes the check by re-parenting or ``setsid``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The interpreter a user runs dev.py with: the base Python, not this test's virtual environment.
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"

SLEEPY = """
from zonda import DAG
from zonda.operators import BashOperator

with DAG("sleepy", schedule=None):
    BashOperator(task_id="nap", bash_command="sleep 300")
"""


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def processes_of(home: Path) -> dict[int, str]:
    """Every live process (pid -> command line) whose environment has ``ZONDA_HOME=home``."""
    marker = f"ZONDA_HOME={home}".encode() + b"\0"
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes() + b"\0":
                continue
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z":  # a zombie has stopped; only its parent's wait() is missing
            found[int(entry.name)] = cmdline.strip()
    return found


def kill_all(home: Path) -> None:
    for pid in processes_of(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def installation_home(tmp_path: Path) -> Iterator[Path]:
    """A fresh ZONDA_HOME whose processes are all killed afterwards, whatever the test saw."""
    home = tmp_path / "home"
    home.mkdir()
    try:
        yield home
    finally:
        kill_all(home)


def standalone_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA__", "VIRTUAL_ENV", "UV_"))}
    env.update(
        ZONDA_HOME=str(home),
        ZONDA__CORE__LOAD_EXAMPLES="false",
        ZONDA__CORE__PARALLELISM="2",
        ZONDA__SCHEDULER__SHUTDOWN_GRACE_PERIOD="1",
        **extra,
    )
    return env


def ti_state(home: Path, dag_id: str, task_id: str) -> str | None:
    db = home / "zonda.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute(
                "select state from task_instance where dag_id = ? and task_id = ?", (dag_id, task_id)
            ).fetchone()
    except sqlite3.OperationalError:  # the schema is still being created
        return None
    return row[0] if row else None


def zonda(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "zonda"), *args],
        env=standalone_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- dev.py ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_dev_py_standalone_stops_every_process(installation_home: Path, signum: int) -> None:
    home = installation_home
    (home / "dags").mkdir()
    (home / "dags" / "sleepy.py").write_text(textwrap.dedent(SLEEPY).lstrip(), encoding="utf-8")
    out_path = home.parent / "standalone.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(BASE_PYTHON), str(ROOT / "dev.py"), "standalone", "--no-triggerer"],
            env=standalone_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal from the test's terminal never reaches it by accident
        )
    try:
        assert wait_until(lambda: "Zonda standalone is running" in out_path.read_text(), 60), out_path.read_text()
        trigger = zonda(home, "dags", "trigger", "sleepy", "--run-id", "r1")
        assert trigger.returncode == 0, trigger.stderr
        assert wait_until(lambda: ti_state(home, "sleepy", "nap") == "running", 30), out_path.read_text()
        assert wait_until(lambda: any(c.startswith("sleep 300") for c in processes_of(home).values()), 10)

        os.kill(proc.pid, signum)

        assert wait_until(lambda: not processes_of(home), 20), (processes_of(home), out_path.read_text())
        assert proc.wait(timeout=5) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "Zonda standalone stopped." in out_path.read_text()


def test_dev_py_zonda_runs_a_zonda_command(installation_home: Path) -> None:
    done = subprocess.run(
        [str(BASE_PYTHON), str(ROOT / "dev.py"), "zonda", "version"],
        env=standalone_env(installation_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    from zonda.version import __version__

    assert done.stdout.strip() == __version__


def test_dev_py_run_names_a_missing_command(installation_home: Path) -> None:
    done = subprocess.run(
        [str(BASE_PYTHON), str(ROOT / "dev.py"), "run", "no-such-zonda-command"],
        cwd=ROOT,
        env=standalone_env(installation_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 127
    assert done.stderr.strip().splitlines()[-1] == (
        "dev.py: no command 'no-such-zonda-command' in .venv/bin or on PATH"
    )
