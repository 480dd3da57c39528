"""The source text of a DAG file, for the web server's code view.

The web server never imports DAG files, but reading one's text is harmless, so it reads the file the DAG was
loaded from: only when that file lies inside the configured DAGs folder (a stored ``fileloc`` is data, and must
not turn the code view into a way of reading any file of the machine), and only up to :data:`MAX_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class DagSource:
    fileloc: str
    #: The file's text (undecodable bytes replaced); None when it is not shown, and ``reason`` says why.
    text: str | None
    reason: str | None = None
    truncated: bool = False


def read_dag_source(dags_folder: Path, fileloc: str | None) -> DagSource:
    """The text of ``fileloc`` when it is a file inside ``dags_folder`` (symbolic links resolved first)."""
    if not fileloc:
        return DagSource("", None, "The DAG processor recorded no file for this DAG.")
    try:
        folder = dags_folder.expanduser().resolve()
        path = Path(fileloc).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        return DagSource(fileloc, None, f"The file's path cannot be resolved: {exc}.")
    if not path.is_relative_to(folder):
        return DagSource(fileloc, None, "The file is outside the DAGs folder ([core] dags_folder); not shown.")
    if path.suffix == ".zip" or not path.is_file():
        return DagSource(fileloc, None, "The file is not a plain file in the DAGs folder any more (moved or zipped).")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return DagSource(fileloc, None, f"The file cannot be read: {exc.strerror or exc}.")
    truncated = len(data) > MAX_BYTES
    return DagSource(fileloc, data[:MAX_BYTES].decode("utf-8", errors="replace"), truncated=truncated)


__all__ = ["MAX_BYTES", "DagSource", "read_dag_source"]
