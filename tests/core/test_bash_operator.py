"""BashOperator: output streaming, XCom, exit codes, environment, cwd, and killing the whole process tree."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from zonda.exceptions import ZondaException, ZondaSkipException, ZondaTaskTimeout
from zonda.operators import BashOperator
from zonda.operators.bash import BashCommandFailed


class StubTI:
    dag_id = "dag_a"
    task_id = "t"
    try_number = 1

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str | None, str], Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))


@pytest.fixture
def context() -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "ds": "2024-01-01",
        "logical_date": datetime(2024, 1, 1, tzinfo=UTC),
        "run_id": "manual__2024-01-01",
        "ti": StubTI(),
        "params": {},
    }


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "zonda.task"]


def test_returns_last_stdout_line_and_logs_both_streams(context, caplog):
    caplog.set_level(logging.INFO, logger="zonda.task")
    op = BashOperator(task_id="t", bash_command="echo first; echo oops >&2; echo last")
    assert op.execute(context) == "last"
    messages = _messages(caplog)
    assert "first" in messages
    assert "last" in messages
    assert "[stderr] oops" in messages


def test_stderr_is_not_the_xcom(context):
    op = BashOperator(task_id="t", bash_command="echo out; echo err >&2")
    assert op.execute(context) == "out"


def test_no_output_returns_empty_string(context):
    assert BashOperator(task_id="t", bash_command="true").execute(context) == ""


def test_output_processor_applies_to_last_line(context):
    op = BashOperator(
        task_id="t", bash_command="echo '{\"a\": 1}'", output_processor=lambda s: __import__("json").loads(s)
    )
    assert op.execute(context) == {"a": 1}


def test_large_output_on_both_pipes_does_not_deadlock(context, caplog):
    caplog.set_level(logging.WARNING, logger="zonda.task")
    # 200k lines on each pipe: far more than a pipe buffer, so reading one pipe at a time would hang.
    command = "seq 1 200000 >&2 & seq 1 200000; wait"
    started = time.monotonic()
    assert BashOperator(task_id="t", bash_command=command).execute(context) == "200000"
    assert time.monotonic() - started < 10


def test_partial_last_line_without_newline(context):
    assert BashOperator(task_id="t", bash_command="printf 'a\\nb'").execute(context) == "b"


def test_undecodable_bytes_are_escaped(context):
    assert BashOperator(task_id="t", bash_command="printf '\\xff\\n'").execute(context) == "\\xff"


def test_default_skip_exit_code_99(context):
    with pytest.raises(ZondaSkipException, match="exit code 99"):
        BashOperator(task_id="t", bash_command="exit 99").execute(context)


def test_custom_skip_codes_and_disabled(context):
    with pytest.raises(ZondaSkipException):
        BashOperator(task_id="t", bash_command="exit 3", skip_on_exit_code=[2, 3]).execute(context)
    with pytest.raises(BashCommandFailed):
        BashOperator(task_id="t", bash_command="exit 99", skip_on_exit_code=None).execute(context)


def test_failure_names_exit_code_and_stderr_tail(context):
    command = "for i in $(seq 1 50); do echo line$i >&2; done; exit 3"
    with pytest.raises(BashCommandFailed) as info:
        BashOperator(task_id="t", bash_command=command).execute(context)
    exc = info.value
    assert isinstance(exc, ZondaException)
    assert exc.exit_code == 3
    assert "exit code 3" in str(exc)
    assert "line50" in str(exc)
    assert "line31" in str(exc)
    assert "line30\n" not in str(exc) + "\n"
    assert len(exc.stderr_tail) == 20


def test_env_replaces_environment(context, monkeypatch):
    monkeypatch.setenv("ZONDA_TEST_OUTER", "outer")
    op = BashOperator(task_id="t", bash_command='echo "${ZONDA_TEST_OUTER:-unset} $FOO"', env={"FOO": "bar"})
    assert op.execute(context) == "unset bar"


def test_append_env_keeps_environment(context, monkeypatch):
    monkeypatch.setenv("ZONDA_TEST_OUTER", "outer")
    op = BashOperator(task_id="t", bash_command='echo "$ZONDA_TEST_OUTER $FOO"', env={"FOO": 1}, append_env=True)
    assert op.execute(context) == "outer 1"


def test_context_variables_in_env(context):
    op = BashOperator(task_id="t", bash_command='echo "$ZONDA_CTX_DAG_ID $ZONDA_CTX_TASK_ID $ZONDA_CTX_DAG_RUN_ID"')
    assert op.execute(context) == "dag_a t manual__2024-01-01"


def test_cwd(context, tmp_path):
    assert BashOperator(task_id="t", bash_command="pwd", cwd=tmp_path).execute(context) == str(tmp_path)


def test_default_cwd_is_a_removed_temp_dir(context):
    where = BashOperator(task_id="t", bash_command="pwd").execute(context)
    assert "zondatmp" in where
    assert not os.path.exists(where)


def test_missing_cwd_is_a_clear_error(context, tmp_path):
    with pytest.raises(ZondaException, match="does not exist"):
        BashOperator(task_id="t", bash_command="true", cwd=str(tmp_path / "nope")).execute(context)
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(ZondaException, match="not a directory"):
        BashOperator(task_id="t", bash_command="true", cwd=str(file)).execute(context)


def test_template_attributes():
    assert set(BashOperator.template_fields) >= {"bash_command", "env", "cwd"}
    assert ".sh" in BashOperator.template_ext
    assert ".bash" in BashOperator.template_ext


def test_bad_arguments():
    with pytest.raises(ZondaException):
        BashOperator(task_id="t", bash_command=["echo"])  # type: ignore[arg-type]
    with pytest.raises(ZondaException):
        BashOperator(task_id="t", bash_command="true", output_processor="x")  # type: ignore[arg-type]


# --- stopping the whole process tree ---------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie no longer runs; its new parent may simply not have reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def _read_pids(path: Path, count: int, deadline: float = 5.0) -> list[int]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if path.exists():
            pids = path.read_text().split()
            if len(pids) >= count:
                return [int(p) for p in pids]
        time.sleep(0.01)
    raise AssertionError(f"the command did not write {count} pids to {path}")


def _wait_gone(pids: list[int], within: float) -> list[int]:
    end = time.monotonic() + within
    while time.monotonic() < end:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


def _run_with_timeout(op: BashOperator, context: dict[str, Any], seconds: float) -> float:
    """Emulate the runner: SIGALRM raises ZondaTaskTimeout inside execute, then on_kill() is called."""

    def on_alarm(signum, frame):
        raise ZondaTaskTimeout(f"task exceeded {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        with pytest.raises(ZondaTaskTimeout):
            op.execute(context)
        op.on_kill()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return time.monotonic() - started


def test_timeout_kills_whole_process_tree(context, tmp_path):
    pids_file = tmp_path / "pids"
    command = f"sleep 60 & echo $! >> {pids_file}; sleep 60 & echo $! >> {pids_file}; echo $$ >> {pids_file}; wait"
    op = BashOperator(task_id="t", bash_command=command)
    elapsed = _run_with_timeout(op, context, 0.5)
    pids = _read_pids(pids_file, 3)
    assert _wait_gone(pids, within=2.0) == []
    assert elapsed < 4


def test_timeout_kills_tree_that_ignores_sigterm(context, tmp_path):
    pids_file = tmp_path / "pids"
    # The children ignore SIGTERM: only the SIGKILL after the grace period stops them.
    command = (
        f"trap '' TERM; (trap '' TERM; sleep 60) & echo $! >> {pids_file}; "
        f"sleep 60 & echo $! >> {pids_file}; echo $$ >> {pids_file}; wait"
    )
    op = BashOperator(task_id="t", bash_command=command)
    _run_with_timeout(op, context, 0.5)
    pids = _read_pids(pids_file, 3)
    assert _wait_gone(pids, within=1.0) == []


def test_grandchildren_holding_pipes_are_killed(context, tmp_path):
    pids_file = tmp_path / "pids"
    # bash -c 'sleep 60' nested: the grandchild shares the process group and holds stdout open.
    command = f"bash -c 'sleep 60 & echo $! >> {pids_file}; wait' & echo $! >> {pids_file}; wait"
    op = BashOperator(task_id="t", bash_command=command)
    _run_with_timeout(op, context, 0.5)
    pids = _read_pids(pids_file, 2)
    assert _wait_gone(pids, within=2.0) == []


def test_on_kill_without_running_process_is_a_no_op():
    BashOperator(task_id="t", bash_command="true").on_kill()
