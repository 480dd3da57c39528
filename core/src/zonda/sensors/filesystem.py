"""FileSensor: wait for a file, a glob match, or a non-empty directory to appear."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from zonda.sensors.base import BaseSensor

if TYPE_CHECKING:
    from zonda.context import Context


class FileSensor(BaseSensor):
    """Done when ``filepath`` (templated; a glob pattern is fine) matches something that counts.

    A file counts as soon as it exists. A directory counts when a file exists somewhere beneath it, as in
    Airflow: an empty directory (or one holding only empty directories) is usually created *before* the
    data lands, so it must not release downstream tasks. ``recursive=True`` lets ``**`` match across
    directories. ``fs_conn_id`` is accepted for Airflow compatibility; paths are local (its base path is
    not applied yet).
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
        import glob

        pattern = os.path.expanduser(os.fspath(self.filepath))
        self.log.info("Poking for file %s", pattern)
        for path in glob.iglob(pattern, recursive=self.recursive):
            if os.path.isfile(path):
                self.log.info("Found file %s", path)
                return True
            if os.path.isdir(path) and _has_file(path):
                self.log.info("Found non-empty directory %s", path)
                return True
        return False


def _has_file(directory: str) -> bool:
    """Whether any file lies beneath ``directory``; stops at the first one instead of walking it all."""
    return any(files for _root, _dirs, files in os.walk(directory))
