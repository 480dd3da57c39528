"""The provider's plugin part: contributes the ``zonda celery`` command (hook ``zonda_cli_commands``)."""

from __future__ import annotations

from zonda.plugins import CliCommand, hookimpl


@hookimpl
def zonda_cli_commands() -> list[CliCommand]:
    from zonda_celery.worker_command import register, show_help

    return [CliCommand("celery", "Run Celery workers for the CeleryExecutor", show_help, register)]
