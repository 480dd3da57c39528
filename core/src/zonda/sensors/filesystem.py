"""FileSensor: wait for a file, a glob match, or a non-empty directory to appear."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.exceptions import ZondaException
from zonda.sensors.base import BaseSensor

if TYPE_CHECKING:
    from zonda.context import Context


class FileSensor(BaseSensor):
    """Done when ``filepath`` (templated; a glob pattern is fine) matches something that counts.

    A file counts as soon as it exists. A directory counts when a file exists somewhere beneath it, as in
    Airflow: an empty directory (or one holding only empty directories) is usually created *before* the
    data lands, so it must not release downstream tasks. ``recursive=True`` lets ``**`` match across
    directories. ``fs_conn_id`` is accepted for Airflow compatibility; paths are local (its base path is
    not applied yet). With ``deferrable=True`` it pokes once, then defers on a ``FileTrigger`` (polling every
    ``poke_interval`` in the triggerer, no worker slot held), bounded by ``timeout``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("filepath",)
    ui_color: ClassVar[str] = "#91818a"

    def __init__(
        self,
        *,
        filepath: str | os.PathLike[str],
        fs_conn_id: str = "fs_default",
        recursive: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filepath = os.fspath(filepath) if isinstance(filepath, os.PathLike) else filepath
        self.fs_conn_id = fs_conn_id
        self.recursive = recursive

    def poke(self, context: Context) -> bool:
        from zonda.triggers.file import find_match

        pattern = os.path.expanduser(os.fspath(self.filepath))
        self.log.info("Poking for file %s", pattern)
        found = find_match(pattern, self.recursive)
        if found is None:
            return False
        self.log.info("Found %s %s", "file" if os.path.isfile(found) else "non-empty directory", found)
        return True

    def execute_deferrable(self, context: Context) -> Any:
        from zonda.triggers.file import FileTrigger

        if self.poke(context):
            return None
        self.defer(
            trigger=FileTrigger(
                filepath=os.path.expanduser(os.fspath(self.filepath)),
                recursive=self.recursive,
                poke_interval=self.poke_interval or 1.0,
            ),
            method_name="execute_complete",
            timeout=self._remaining_timeout(),
        )

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Resumed when the trigger fired with the path it found."""
        if not event:
            raise ZondaException(f"sensor {self.task_id!r}: the trigger fired but {self.filepath} was not found")
        self.log.info("Found %s", event)


def _has_file(directory: str) -> bool:
    from zonda.triggers.file import has_file

    return has_file(directory)
