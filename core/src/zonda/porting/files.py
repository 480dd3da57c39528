"""Port files and folders: read each ``.py`` file, rewrite it, and write it in place or under another folder.

With ``out``, every given path keeps its layout below ``out`` (a folder's files under ``out/<folder name>/``, a
file as ``out/<file name>``) and the folder's other files (SQL, templates) are copied beside them, so the ported
DAGs find what they read. Without ``out`` or ``in_place`` nothing is written: a dry run that only reports.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zonda.exceptions import ZondaException

SKIPPED_FOLDERS = frozenset(("__pycache__", ".git", ".venv", "node_modules"))


@dataclass
class FileReport:
    """One file: where it came from, where it went (None: dry run), and what is left to port by hand."""

    path: Path
    written: Path | None
    changed: bool
    problems: list[tuple[int, str]] = field(default_factory=list)


def _libcst_missing() -> ZondaException:
    return ZondaException(
        "`zonda dags port` needs libcst, which is not installed; install it with: pip install 'zonda[port]'"
    )


def _walk(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIPPED_FOLDERS.intersection(path.relative_to(root).parts):
            yield path


def _sources(paths: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """``(file, path relative to the output folder)`` for every file under the given paths."""
    for given in paths:
        if given.is_dir():
            for path in _walk(given):
                yield path, Path(given.resolve().name) / path.relative_to(given)
        elif given.is_file():
            yield given, Path(given.name)
        else:
            raise ZondaException(f"{given}: no such file or folder; pass DAG files or folders holding them")


def port_paths(
    paths: Iterable[str | Path], *, out: str | Path | None = None, in_place: bool = False
) -> list[FileReport]:
    """Port every ``.py`` file under ``paths``; returns one report per Python file, in path order."""
    if out is not None and in_place:
        raise ZondaException("choose one of --out DIR and --in-place (or neither, for a dry run)")
    try:
        from zonda.porting.rewrite import port_source
    except ImportError as exc:
        if exc.name == "libcst":
            raise _libcst_missing() from None
        raise
    out_root = Path(out) if out is not None else None
    reports: list[FileReport] = []
    for path, relative in _sources(Path(p) for p in paths):
        target = out_root / relative if out_root is not None else (path if in_place else None)
        if path.suffix != ".py":
            if target is not None and target != path:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reports.append(FileReport(path, None, False, [(1, f"cannot read the file: {exc}")]))
            continue
        ported = port_source(source)
        if target is not None and (ported.changed or target != path):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(ported.source, encoding="utf-8")
        reports.append(FileReport(path, target, ported.changed, ported.problems))
    return reports
