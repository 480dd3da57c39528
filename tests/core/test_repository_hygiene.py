"""The project's files name no folder of one particular machine: paths are relative to the repository.

A path such as a developer's home or checkout folder works on that machine only; in docs it misleads and in
code it breaks on the next one. The patterns are built from parts so this file does not match itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_MACHINE_ROOTS = ("work", "root", "home", "Users")
_PATTERN = re.compile("(?<![\\w.~])/(?:" + "|".join(_MACHINE_ROOTS) + r")/[A-Za-z0-9_.-]+")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    files = []
    for raw in listed:
        if not raw:
            continue
        path = REPO / raw.decode()
        if path.suffix in {".lock", ".png", ".jpg", ".ico", ".woff", ".woff2", ".gz"} or not path.is_file():
            continue
        files.append(path)
    return files


def test_the_pattern_catches_machine_paths() -> None:
    home = "/" + "root" + "/project/x.py"
    checkout = "cd /" + "work" + "/main"
    assert _PATTERN.search(home)
    assert _PATTERN.search(checkout)
    assert not _PATTERN.search("../shared/peers and ~/.cache/zonda-bench and /tmp/peers")


def test_no_tracked_file_names_a_folder_of_this_machine() -> None:
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            match = _PATTERN.search(line)
            if match:
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    assert not found, "absolute paths of a machine (use paths relative to the repository):\n" + "\n".join(found)


def test_every_test_security_md_names_exists() -> None:
    """SECURITY.md links each promise to its test; a renamed or deleted test must not leave a dead link.

    A reference is `tests/...py`, `tests/...py::name` or `::name` (a test of the file named last before it).
    """
    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    references = re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", text)
    missing, current, count = [], None, 0
    for reference in references:
        path, _, name = reference.partition("::")
        if path:
            current = REPO / path
            if not current.is_file():
                missing.append(path)
                continue
        if name:
            count += 1
            if current is None or not re.search(rf"^(?:async )?def {name}\(", current.read_text(), re.MULTILINE):
                missing.append(f"{current and current.relative_to(REPO)}::{name}")
    assert count >= 15, "SECURITY.md should name the tests behind its promises"
    assert not missing, "SECURITY.md names tests that do not exist: " + ", ".join(missing)
