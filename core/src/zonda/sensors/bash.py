"""BashSensor: poke by running a shell command; exit code 0 means done (Airflow's rules for the others)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import DagDefinitionError, ZondaFailException
from zonda.sensors.base import BaseSensor

if TYPE_CHECKING:
    from zonda.context import Context


class BashSensor(BaseSensor):
    """Run ``bash_command`` (templated) with ``bash -c`` in a fresh temporary folder at every poke.

    Exit code 0: done. Any other code: poke again later, unless ``retry_exit_code`` is set, in which case
    only that code means "poke again" and every other one fails the task (no retries: the command said no).
    ``env`` (templated) replaces the environment, as in Airflow; None inherits the worker's. The output is
    logged line by line. Pass run data through ``env`` (``env={"DAY": "{{ ds }}"}`` and ``"$DAY"``), never by
    templating it into the command, so a value can never become shell code.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("bash_command", "env")
    template_fields_renderers: ClassVar[dict[str, str]] = {"bash_command": "bash", "env": "json"}

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, Any] | None = None,
        output_encoding: str = "utf-8",
        retry_exit_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(bash_command, str):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: bash_command must be a string, not {type(bash_command).__name__}"
            )
        self.bash_command = bash_command
        self.env = env
        self.output_encoding = output_encoding
        self.retry_exit_code = retry_exit_code

    def poke(self, context: Context) -> bool:
        import subprocess
        import tempfile

        env = None if self.env is None else {str(k): str(v) for k, v in self.env.items()}
        self.log.info("Running command: %s", self.bash_command)
        with tempfile.TemporaryDirectory(prefix="zondatmp", ignore_cleanup_errors=True) as tmp:
            result = subprocess.run(
                ["bash", "-c", self.bash_command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env=env,
                start_new_session=True,
                check=False,
            )
        for line in result.stdout.decode(self.output_encoding, errors="backslashreplace").splitlines():
            self.log.info("%s", line)
        code = result.returncode
        self.log.info("Command exited with return code %s", code)
        if code == 0:
            return True
        if self.retry_exit_code is not None and code != self.retry_exit_code:
            raise ZondaFailException(
                f"sensor {self.task_id!r}: the command exited with {code}, not 0 (done) or "
                f"retry_exit_code {self.retry_exit_code} (poke again)"
            )
        return False
