"""``zonda standalone`` as a child process, the way users run it: started with a home, read through its banner,
stopped with SIGTERM. Shared by the standalone tests and the browser tests that need a real scheduler."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The banner's last line: every service is up once it is printed.
BANNER_END = "Trigger a DAG from another terminal"
#: Longest wait for the banner (the first start initialises the metastore).
BANNER_TIMEOUT_SECONDS = 60
URL_LINE = re.compile(r"web UI:\s+(http://127\.0\.0\.1:\d+)")
PASSWORD_LINE = re.compile(r"log in as admin, password (\S+) \(shown once; also in (\S+)\)")


@dataclass(frozen=True)
class Banner:
    text: str

    @property
    def url(self) -> str | None:
        found = URL_LINE.search(self.text)
        return found.group(1) if found else None

    @property
    def password(self) -> re.Match[str] | None:
        """The first start's password line: group 1 the password, group 2 the file that keeps it."""
        return PASSWORD_LINE.search(self.text)


def standalone_env(home: Path, **settings: str) -> dict[str, str]:
    """This test environment without the developer's Zonda settings, with the examples off, new DAGs unpaused
    (the browser flows run the DAGs they add; pausing at creation is tested in tests/core) and ``settings``
    (``ZONDA__SECTION__KEY`` names) added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZONDA__", "VIRTUAL_ENV"))}
    env.update(
        ZONDA_HOME=str(home),
        ZONDA__CORE__LOAD_EXAMPLES="false",
        ZONDA__CORE__DAGS_ARE_PAUSED_AT_CREATION="false",
        ZONDA__CORE__PARALLELISM="1",
        ZONDA__SCHEDULER__SHUTDOWN_GRACE_PERIOD="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def start_standalone(home: Path, out: Path, **settings: str) -> subprocess.Popen[bytes]:
    """Start ``zonda standalone --port 0`` (no triggerer) on ``home``, its output into ``out``."""
    with out.open("wb") as handle:
        return subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "zonda"), "standalone", "--no-triggerer", "--port", "0"],
            env=standalone_env(home, **settings),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def read_banner(proc: subprocess.Popen[bytes], out: Path) -> Banner:
    """The output once the banner is complete (or the process ended, or the wait ran out: the caller's
    assertions then show what it printed)."""
    deadline = time.monotonic() + BANNER_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = out.read_text()
        if BANNER_END in text or proc.poll() is not None:
            return Banner(text)
        time.sleep(0.1)
    return Banner(out.read_text())


def stop_standalone(proc: subprocess.Popen[bytes], out: Path) -> None:
    """SIGTERM, then a clean exit with the goodbye line; killed if it did not stop."""
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "Zonda standalone stopped." in out.read_text()
