"""BashOperator: run a shell command, stream its output to the task log, return its last stdout line.

The command runs as ``bash -c`` in a new session, so it and everything it starts form one process group.
Stopping the task (``execution_timeout``, a kill, any abnormal exit of :meth:`BashOperator.execute`) kills
that whole group: SIGTERM first, SIGKILL after a grace period. Without that, ``sleep 60 & wait`` would leave
orphans running long after the task was declared failed.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Callable, Container, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException, ZondaSkipException
from zonda.operators.base import BaseOperator

if TYPE_CHECKING:
    import subprocess

    from zonda.context import Context

#: How long the process group gets to exit after SIGTERM before it is sent SIGKILL.
KILL_GRACE_SECONDS = 2.0
#: Lines of stderr quoted in the error of a failed command.
STDERR_TAIL_LINES = 20
#: A line longer than this (no newline in sight) is logged in pieces, so memory stays bounded.
_MAX_LINE_BYTES = 1 << 20
_READ_SIZE = 1 << 16


class BashCommandFailed(ZondaException):
    """The command exited with a non-zero code that is not a skip code.

    ``exit_code`` is the code (negative: killed by that signal); ``stderr_tail`` the last lines of stderr.
    """

    def __init__(self, message: str, *, exit_code: int, stderr_tail: list[str]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


def _identity(value: str) -> Any:
    return value


class BashOperator(BaseOperator):
    """Run ``bash_command`` with ``bash -c``; the last line of its stdout is the task's XCom.

    Arguments mean what they mean in Airflow:

    - ``bash_command``: the command, rendered with Jinja; a value ending in ``.sh`` or ``.bash`` names a
      template file whose rendered content is run.
    - ``env``: the environment of the command (rendered). ``None`` inherits the worker's environment; a
      mapping *replaces* it unless ``append_env=True``, which adds to it. Either way the ``ZONDA_CTX_*``
      variables (dag id, task id, run id, logical date, try number) are set, like Airflow's
      ``AIRFLOW_CTX_*``.
    - ``cwd``: the working directory (rendered); it must exist. ``None`` runs the command in a fresh
      temporary directory, removed afterwards, as Airflow does: scratch files never pile up on the worker.
    - ``skip_on_exit_code``: exit code(s) that end the task *skipped* (default 99; ``None`` disables).
    - ``output_encoding``: how output bytes are decoded (undecodable bytes are backslash-escaped).
    - ``output_processor``: applied to the last stdout line before it becomes the XCom.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bash_command", "env", "cwd")
    template_fields_renderers: ClassVar[dict[str, str]] = {"bash_command": "bash", "env": "json"}
    template_ext: ClassVar[tuple[str, ...]] = (".sh", ".bash")
    ui_color: ClassVar[str] = "#f0ede4"

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, Any] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Container[int] | None = 99,
        cwd: str | os.PathLike[str] | None = None,
        output_processor: Callable[[str], Any] = _identity,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(bash_command, str) and not _is_xcom_arg(bash_command):
            raise ZondaException(
                f"task {self.task_id!r}: bash_command must be a string, not {type(bash_command).__name__}"
            )
        if not callable(output_processor):
            raise ZondaException(f"task {self.task_id!r}: output_processor must be callable")
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.output_encoding = output_encoding
        self.skip_on_exit_code = skip_on_exit_code
        self.cwd = os.fspath(cwd) if isinstance(cwd, os.PathLike) else cwd
        self.output_processor = output_processor
        self._process: subprocess.Popen[bytes] | None = None

    # --- running ----------------------------------------------------------------------------------------

    def get_env(self, context: Mapping[str, Any]) -> dict[str, str]:
        """The command's environment: see the class docstring for the rules."""
        if self.env is None:
            env = dict(os.environ)
        elif self.append_env:
            env = {**os.environ, **_stringify_env(self.env)}
        else:
            env = _stringify_env(self.env)
        env.update(_context_env(context))
        return env

    def execute(self, context: Context) -> Any:
        command = self.bash_command
        if not isinstance(command, str):
            raise ZondaException(f"task {self.task_id!r}: bash_command rendered to {command!r}, not a string")
        cwd = self.cwd
        if cwd is not None and not os.path.isdir(cwd):
            what = "is not a directory" if os.path.exists(cwd) else "does not exist"
            raise ZondaException(f"task {self.task_id!r}: cwd {cwd!r} {what}; create it or fix the path")
        env = self.get_env(context)
        if cwd is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="zondatmp", ignore_cleanup_errors=True) as tmp:
                return self._run(command, tmp, env)
        return self._run(command, cwd, env)

    def _run(self, command: str, cwd: str, env: dict[str, str]) -> Any:
        import subprocess

        self.log.info("Running command: %s", command)
        try:
            process = subprocess.Popen(
                ["bash", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ZondaException(f"task {self.task_id!r}: cannot start bash ({exc}); is bash installed?")
        self._process = process
        finished = False
        try:
            last_line, stderr_tail = self._stream_output(process)
            exit_code = process.wait()
            finished = True
        finally:
            if not finished:
                # Timeout, kill or a logging error: nothing of the command may outlive the task.
                self._kill_group(process)
                for pipe in (process.stdout, process.stderr):
                    if pipe is not None:
                        pipe.close()
            self._process = None
        self.log.info("Command exited with return code %s", exit_code)
        if _is_skip_code(exit_code, self.skip_on_exit_code):
            raise ZondaSkipException(f"Bash command returned exit code {exit_code}; skipping the task")
        if exit_code != 0:
            raise BashCommandFailed(
                _failure_message(exit_code, stderr_tail), exit_code=exit_code, stderr_tail=list(stderr_tail)
            )
        return self.output_processor(last_line)

    def _stream_output(self, process: subprocess.Popen[bytes]) -> tuple[str, deque[str]]:
        """Log stdout and stderr lines as they arrive; return the last stdout line and the stderr tail.

        One thread multiplexes both pipes with a selector: reading them one after the other could deadlock
        when the unread pipe fills up, and a reader thread would be one more thing to stop on timeout.
        """
        import selectors

        assert process.stdout is not None and process.stderr is not None
        log = self.log
        encoding = self.output_encoding
        stdout_fd, stderr_fd = process.stdout.fileno(), process.stderr.fileno()
        pending = {stdout_fd: b"", stderr_fd: b""}
        last_stdout = b""
        stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

        def emit(fd: int, raw: bytes) -> None:
            nonlocal last_stdout
            line = raw.decode(encoding, errors="backslashreplace").rstrip("\r")
            if fd == stdout_fd:
                last_stdout = raw
                log.info("%s", line)
            else:
                stderr_tail.append(line)
                log.info("[stderr] %s", line)

        with selectors.DefaultSelector() as selector:
            selector.register(stdout_fd, selectors.EVENT_READ)
            selector.register(stderr_fd, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    fd = key.fd
                    chunk = os.read(fd, _READ_SIZE)
                    if not chunk:
                        selector.unregister(fd)
                        if pending[fd]:
                            emit(fd, pending[fd])
                            pending[fd] = b""
                        continue
                    *lines, rest = (pending[fd] + chunk).split(b"\n")
                    for raw in lines:
                        emit(fd, raw)
                    while len(rest) > _MAX_LINE_BYTES:
                        emit(fd, rest[:_MAX_LINE_BYTES])
                        rest = rest[_MAX_LINE_BYTES:]
                    pending[fd] = rest
        process.stdout.close()
        process.stderr.close()
        return last_stdout.decode(encoding, errors="backslashreplace").rstrip("\r"), stderr_tail

    # --- stopping ---------------------------------------------------------------------------------------

    def on_kill(self) -> None:
        """Kill the command's whole process group (SIGTERM, then SIGKILL after a grace period)."""
        process = self._process
        if process is not None:
            self._kill_group(process)

    def _kill_group(self, process: subprocess.Popen[bytes]) -> None:
        pgid = process.pid  # start_new_session: the shell leads its own session and process group
        if not _signal_group(pgid, signal.SIGTERM):
            process.poll()
            return
        self.log.info("Sent SIGTERM to the process group %s of the command", pgid)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline:
            process.poll()  # reap the shell, else it lingers as a zombie member of the group
            if not _group_alive(pgid):
                break
            time.sleep(0.02)
        else:
            self.log.warning("Process group %s alive after %ss; sending SIGKILL", pgid, KILL_GRACE_SECONDS)
            _signal_group(pgid, signal.SIGKILL)
        import subprocess

        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.log.error("Command process %s did not exit after SIGKILL", pgid)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the group.

    ``killpg(pgid, 0)`` alone also counts zombies, which stay around until their new parent reaps them
    (some container init processes never do); on Linux ``/proc`` tells them apart.
    """
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses; split after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _is_skip_code(exit_code: int, skip_on_exit_code: int | Container[int] | None) -> bool:
    if skip_on_exit_code is None or exit_code == 0:
        return False
    if isinstance(skip_on_exit_code, int):
        return exit_code == skip_on_exit_code
    return exit_code in skip_on_exit_code


def _failure_message(exit_code: int, stderr_tail: deque[str]) -> str:
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        message = f"Bash command was killed by {name} (exit code {exit_code})"
    else:
        message = f"Bash command failed with exit code {exit_code}"
    if stderr_tail:
        return f"{message}. Last {len(stderr_tail)} line(s) of stderr:\n" + "\n".join(stderr_tail)
    return f"{message} (no stderr output)"


def _stringify_env(env: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(env, Mapping):
        raise ZondaException(f"env must be a mapping of names to values, not {type(env).__name__}")
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _context_env(context: Mapping[str, Any]) -> dict[str, str]:
    """``ZONDA_CTX_*`` variables, so scripts know which task they run for (Airflow's ``AIRFLOW_CTX_*``)."""
    env: dict[str, str] = {}
    ti = context.get("ti")
    dag = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None)
    values = {
        "ZONDA_CTX_DAG_ID": dag_id,
        "ZONDA_CTX_TASK_ID": getattr(ti, "task_id", None),
        "ZONDA_CTX_DAG_RUN_ID": context.get("run_id"),
        "ZONDA_CTX_TRY_NUMBER": getattr(ti, "try_number", None),
    }
    logical_date = context.get("logical_date")
    if logical_date is not None:
        values["ZONDA_CTX_LOGICAL_DATE"] = (
            logical_date.isoformat() if hasattr(logical_date, "isoformat") else logical_date
        )
    for key, value in values.items():
        if value is not None:
            env[key] = str(value)
    return env


def _is_xcom_arg(value: Any) -> bool:
    from zonda.xcom_arg import XComArg

    return isinstance(value, XComArg)
