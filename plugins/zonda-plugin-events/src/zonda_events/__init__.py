"""An example pip-installable Zonda plugin: event log listener plus a CLI command."""
