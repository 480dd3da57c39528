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
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

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


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
        if not port_is_free(self.port):
            # Something already answers there: "ready" would be that server, not ours.
            raise LocalServerError(f"port {self.port} on 127.0.0.1 is in use; choose another (or none: a free one)")
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
                if self.process.poll() is None:  # it is our process that answered, not a late squatter
                    return
                continue
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


# --- zonda standalone ---------------------------------------------------------------------------------------

STANDALONE_CONN_ID = "elasticsearch_default"
STANDALONE_PORT = 9200


@contextlib.contextmanager
def _serve_for_standalone(server: LocalElasticsearch) -> Iterator[str]:
    env_key = f"ZONDA_CONN_{STANDALONE_CONN_ID.upper()}"
    server.start()
    previous = os.environ.get(env_key)
    # Task processes are forked from the scheduler: they inherit the connection from the environment.
    os.environ[env_key] = f"elasticsearch://127.0.0.1:{server.port}/http"
    try:
        yield (
            f"Elasticsearch-compatible server (noida-db) on {server.url} as {STANDALONE_CONN_ID}, "
            f"data in {server.data_dir}"
        )
    finally:
        if previous is None:
            os.environ.pop(env_key, None)
        else:
            os.environ[env_key] = previous
        server.stop()


def standalone_service(settings: Any) -> contextlib.AbstractContextManager[str] | None:
    """What ``zonda standalone`` runs for this provider (its manifest's ``standalone_services``).

    When ``elasticsearch_default`` is not configured anywhere (secrets backends, environment, metastore), a
    local server starts for the example DAG ``es_search_pipeline`` on 127.0.0.1:9200 (or a free port when
    9200 is taken), keeping its data under ``$ZONDA_HOME/elasticsearch``. A configured connection always wins:
    then nothing starts. Without noida-db installed this says how to get it and starts nothing.
    """
    from zonda.exceptions import ConnectionNotFound
    from zonda.secrets import ConnectionLookup

    try:
        ConnectionLookup(settings).get_connection(STANDALONE_CONN_ID)
        return None
    except ConnectionNotFound:
        pass
    try:
        find_binary()
    except LocalServerError as exc:
        raise LocalServerError(
            f"{STANDALONE_CONN_ID} is not configured and {exc}; or add the connection "
            "(zonda connections add elasticsearch_default --conn-uri ...)"
        ) from None
    port = STANDALONE_PORT if port_is_free(STANDALONE_PORT) else free_port()
    return _serve_for_standalone(LocalElasticsearch(Path(settings.home) / "elasticsearch", port))
