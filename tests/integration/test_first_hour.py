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
import stat
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
        ZONDA__WEBSERVER__PORT="0",  # standalone's web server on a free port: tests run side by side
    )
    env.update(extra)
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


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGINT", "ctrl-c-to-the-process-group"],
)
def test_a_signal_to_dev_py_standalone_stops_every_process(
    installation_home: Path, signum: int, to_group: bool
) -> None:
    """To dev.py's pid (``kill PID``), or to its whole process group as a terminal's Ctrl+C does."""
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
        assert "zonda dags unpause" in out_path.read_text()  # new DAGs start paused: the banner says so
        unpause = zonda(home, "dags", "unpause", "sleepy")
        assert unpause.returncode == 0, unpause.stderr
        trigger = zonda(home, "dags", "trigger", "sleepy", "--run-id", "r1")
        assert trigger.returncode == 0, trigger.stderr
        assert wait_until(lambda: ti_state(home, "sleepy", "nap") == "running", 30), out_path.read_text()
        assert wait_until(lambda: any(c.startswith("sleep 300") for c in processes_of(home).values()), 10)

        if to_group:
            os.killpg(proc.pid, signum)  # start_new_session: dev.py leads its group
        else:
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


def readme_commands(after: str) -> list[str]:
    """The commands of the README's first ``bash`` block after the text ``after``, comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```bash\n", text.index(after)) + len("```bash\n")
    block = text[start : text.index("```", start)]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_the_readme_ways_to_get_zonda_work_in_a_fresh_shell(installation_home: Path) -> None:
    """A new shell knows nothing of the checkout: no uv, no zonda, no virtual environment on the PATH. Every way
    the quick start gives works there as written, and after ``source .venv/bin/activate`` plain ``zonda`` does."""
    commands = readme_commands("To get the `zonda` command in a new shell")
    assert commands[0] == "source .venv/bin/activate"
    assert {".venv/bin/zonda dags list", "python3 dev.py zonda dags list"} <= set(commands)
    fresh = {
        "HOME": os.environ.get("HOME", str(installation_home)),
        "PATH": os.pathsep.join([str(BASE_PYTHON.parent), "/usr/bin", "/bin"]),
        "ZONDA_HOME": str(installation_home),
        "ZONDA__CORE__LOAD_EXAMPLES": "false",
    }
    script = "set -e\n" + "\n".join([*commands, "command -v uv && exit 3", "zonda version"]) + "\n"
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=fresh, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    from zonda.version import __version__

    assert done.stdout.strip().splitlines()[-1] == __version__


# --- the home's folders and plugins ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["db", "init"], ["scheduler", "--num-runs", "1"]], ids=["db-init", "scheduler"])
def test_the_first_start_creates_the_dags_and_plugins_folders(installation_home: Path, command: list[str]) -> None:
    done = zonda(installation_home, *command)
    assert done.returncode == 0, done.stderr
    for name in ("dags", "plugins"):
        folder = installation_home / name
        assert folder.is_dir(), f"{command}: no {folder}"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, oct(folder.stat().st_mode)


def test_existing_folders_are_left_as_they_are(installation_home: Path) -> None:
    (installation_home / "dags").mkdir(mode=0o755)
    os.chmod(installation_home / "dags", 0o755)
    assert zonda(installation_home, "db", "init").returncode == 0
    assert stat.S_IMODE((installation_home / "dags").stat().st_mode) == 0o755
    assert stat.S_IMODE((installation_home / "plugins").stat().st_mode) == 0o700


STAMP_PLUGIN = """
import os

from zonda import hookimpl

VERSION = {version!r}


@hookimpl
def on_task_instance_running(previous_state, task_instance):
    fd = os.open({marker!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{{VERSION}} {{task_instance.run_id}}\\n".encode())
    finally:
        os.close(fd)
"""

TICK = """
from zonda import DAG
from zonda.operators import BashOperator

with DAG("tick", schedule=None):
    BashOperator(task_id="echo", bash_command="echo tick")
"""


def dag_known(home: Path, dag_id: str) -> bool:
    try:
        with sqlite3.connect(home / "zonda.db", timeout=5) as conn:
            return conn.execute("select 1 from dag where dag_id = ?", (dag_id,)).fetchone() is not None
    except sqlite3.OperationalError:
        return False


def run_state(home: Path, run_id: str) -> str | None:
    db = home / "zonda.db"
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("select state from dag_run where run_id = ?", (run_id,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def test_a_plugin_added_or_changed_while_standalone_runs_is_used_by_the_next_task(installation_home: Path) -> None:
    """One worker (parallelism 1) that keeps its task process between tasks: the case where a plugin imported
    before the fork would otherwise stay in use. Plugins are added, then changed, while the services run."""
    home = installation_home
    marker = home.parent / "marker.txt"
    out_path = home.parent / "standalone.out"
    env = standalone_env(home, ZONDA__CORE__PARALLELISM="1", PYTHONUNBUFFERED="1")
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "zonda"), "standalone", "--no-triggerer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: "Zonda standalone is running" in out_path.read_text(), 60), out_path.read_text()
        plugins, dags = home / "plugins", home / "dags"
        assert plugins.is_dir() and dags.is_dir()

        def stamp(name: str, version: str) -> None:
            path = plugins / f"{name}.py"
            path.write_text(textwrap.dedent(STAMP_PLUGIN.format(version=version, marker=str(marker))))

        def run(run_id: str) -> list[str]:
            trigger = zonda(home, "dags", "trigger", "tick", "--run-id", run_id)
            assert trigger.returncode == 0, trigger.stderr
            assert wait_until(lambda: run_state(home, run_id) == "success", 30), out_path.read_text()
            lines = marker.read_text().splitlines() if marker.exists() else []
            return sorted(line.split()[0] for line in lines if line.endswith(f" {run_id}"))

        stamp("stamp", "v1")  # added after the workers started
        (dags / "tick.py").write_text(textwrap.dedent(TICK).lstrip())
        assert wait_until(lambda: dag_known(home, "tick"), 30), out_path.read_text()
        unpause = zonda(home, "dags", "unpause", "tick")  # new DAGs start paused
        assert unpause.returncode == 0, unpause.stderr
        assert run("r1") == ["v1"]
        assert run("r2") == ["v1"]  # unchanged: the kept task process runs it

        stamp("stamp", "v2-changed")  # changed (and longer, so the size differs too)
        stamp("second", "second")  # and another one added
        assert run("r3") == ["second", "v2-changed"]

        (plugins / "second.py").unlink()  # removed
        assert run("r4") == ["v2-changed"]
        # The scheduler looks at the folder every 2 s; on a fast machine the four runs take less than that.
        assert wait_until(lambda: "plugins folder changed" in out_path.read_text(), 15), out_path.read_text()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    output = out_path.read_text()
    notices = [line for line in output.splitlines() if "plugins folder changed" in line]
    assert notices, output
    assert all("restart zonda so the scheduler" in line for line in notices)
