"""Owner-only folders and files (``zonda.private_files``): the modes hold whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zonda.private_files import create_private_file, make_private_folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_parents_are_made_owner_only_and_existing_folders_are_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    old = os.umask(0)
    try:
        make_private_folder(shared / "a" / "b" / "c")
        make_private_folder(shared / "a" / "b" / "c")  # already there: nothing happens
        create_private_file(shared / "a" / "x" / "attempt.log")
    finally:
        os.umask(old)
    assert _mode(shared) == 0o755
    for folder in (shared / "a", shared / "a" / "b", shared / "a" / "b" / "c", shared / "a" / "x"):
        assert _mode(folder) == 0o700, folder
    assert _mode(shared / "a" / "x" / "attempt.log") == 0o600
