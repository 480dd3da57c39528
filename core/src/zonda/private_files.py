"""Files and folders only their owner can read: the config, the SQLite metastore, task logs.

Why explicit modes: these hold the Fernet key, connection data and whatever tasks print. Python's defaults
(``open``, ``Path.mkdir``) take the permissions from the umask, which is often ``022`` (everyone may read) or
``000`` in containers. Every mode here is a subset of ``0600`` / ``0700``, so the umask can only remove bits.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_private_folder(path: Path) -> None:
    """Create ``path`` and any missing parents as owner-only folders (``Path.mkdir(parents=True, mode=...)``
    would give the parents the umask's default). Existing folders are left as they are.

    ``mkdir`` first, parents only when it says they are missing: every task attempt makes its log folder under
    folders that exist, and that is then one system call instead of a ``stat`` per level first."""
    try:
        path.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        return
    except FileNotFoundError:
        if path.parent == path:
            raise
        make_private_folder(path.parent)
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            path.mkdir(mode=FOLDER_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only unless it exists (then it is left as it is)."""
    make_private_folder(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path``'s content atomically (a temporary file renamed over it): readers see the old or the new
    text, never half; the result is owner-only whatever the old file's mode was."""
    make_private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)  # O_TRUNC on a leftover temporary kept its old mode
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def is_shared(path: Path) -> bool:
    """Whether others than the owner may read or write ``path`` (group or world bits set)."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False
