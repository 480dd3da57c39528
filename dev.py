#!/usr/bin/env python3
"""Bootstrap and run the Zonda workspace with nothing but python3.

    python3 dev.py standalone  # run Zonda: DAG processor, scheduler, triggerer on SQLite (the main job)
    python3 dev.py demo        # run one example pipeline once, in process (zonda dags test user_processing)
    python3 dev.py test        # run the whole test suite
    python3 dev.py sync    # only create/refresh the development environment
    python3 dev.py run CMD # run any command inside the environment

The first call installs uv into ``.tools/`` (a private venv), then ``uv sync`` builds ``.venv`` with every
workspace distribution installed editable. Later calls reuse both, so they start in well under a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    uv_bin = TOOLS / "bin" / "uv"
    if not uv_bin.exists():
        print("dev.py: installing uv into .tools/ (one time)", file=sys.stderr)
        venv.create(TOOLS, with_pip=True)
        subprocess.run([str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q", "uv"], check=True)
    return str(uv_bin)


def _run(argv: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.setdefault("UV_PYTHON", sys.executable)
    env.setdefault("UV_COMPILE_BYTECODE", "1")
    uv = _uv()
    subprocess.run([uv, "sync", "--all-packages", "--quiet"], cwd=ROOT, env=env, check=True)
    if not argv:
        return 0
    return subprocess.call([uv, "run", "--all-packages", "--no-sync", *argv], cwd=ROOT, env=env)


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    if command == "standalone":
        return _run(["zonda", "standalone", *rest])
    if command == "demo":
        return _run(["zonda", "dags", "test", "user_processing", *rest])
    if command == "test":
        return _run(["pytest", *rest])
    if command == "sync":
        return _run([])
    if command == "run":
        return _run(rest)
    print(f"dev.py: unknown command {command!r}; use standalone, demo, test, sync or run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
