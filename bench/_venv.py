"""Where the workspace venv is, and re-running a benchmark with its Python.

The benchmarks are started with any ``python3`` (the README's commands), but they need the venv's packages
(SQLAlchemy, psycopg, the providers). Each calls :func:`reexec_in_venv` first; the flag in the environment stops
a loop if the venv's interpreter ever resolves to another prefix.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV = REPO / ".venv"
VENV_PY = VENV / "bin" / "python"


def reexec_in_venv(script: str) -> None:
    """Replace this process with ``VENV_PY script argv...`` unless it already is the venv's Python."""
    if Path(sys.prefix).resolve() != VENV.resolve() and os.environ.get("ZONDA_BENCH_REEXEC") != "1":
        os.environ["ZONDA_BENCH_REEXEC"] = "1"
        os.execv(str(VENV_PY), [str(VENV_PY), script, *sys.argv[1:]])
