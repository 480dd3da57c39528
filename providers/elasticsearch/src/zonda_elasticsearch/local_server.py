"""A local Elasticsearch-compatible server for development, tests and ``zonda standalone``.

Real Elasticsearch needs a JVM (or Docker) that a laptop or CI box often lacks. ``noida-db`` (PyPI, the
``local`` extra of this provider) is one small binary that speaks the Elasticsearch REST protocol; this module
starts it on a free loopback port, waits until it answers, and stops it again. Against production clusters,
configure a connection instead: nothing here is used then.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

INSTALL_HINT = "pip install 'zonda-provider-elasticsearch[local]' (it brings noida-db)"


class LocalServerError(RuntimeError):
    """The local server could not be found or did not come up."""


def find_binary() -> str:
    """The noida-db executable: the one inside the installed ``noida_db`` package, else one on PATH."""
    try:
        from importlib.resources import files

        candidate = files("noida_db").joinpath("noida-db")
        if candidate.is_file():
            path = str(candidate)
            if not os.access(path, os.X_OK):
                os.chmod(path, 0o755)
            return path
    except ModuleNotFoundError:
        pass
    found = shutil.which("noida-db")
    if found:
        return found
    raise LocalServerError(f"no local Elasticsearch-compatible server is installed; {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalElasticsearch:
    """``noida-db`` serving only its Elasticsearch protocol on ``127.0.0.1:<port>``.

    ``data_dir`` keeps the indices between starts. Use as a context manager, or call :meth:`start` and
    :meth:`stop`. The server runs in its own process group so stopping it never signals the caller.
    """

    def __init__(self, data_dir: str | Path, port: int | None = None, *, startup_timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "noida-db.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalElasticsearch:
        binary = find_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    binary,
                    "start",
                    "--only",
                    "elasticsearch",
                    "--elasticsearch-port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LocalServerError(
                    f"the local Elasticsearch-compatible server exited with code {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as response:
                    json.loads(response.read())
                    return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = exc
            time.sleep(0.05)
        self.stop()
        raise LocalServerError(
            f"the local Elasticsearch-compatible server did not answer on {self.url} within "
            f"{self.startup_timeout:.0f} s ({last_error}); see {self.log_path}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def __enter__(self) -> LocalElasticsearch:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
