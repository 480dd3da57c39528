#!/usr/bin/env python3
"""Bootstrap and run the Zonda workspace with nothing but python3.

    python3 dev.py standalone  # run Zonda: DAG processor, scheduler, triggerer on SQLite (the main job)
    python3 dev.py demo        # run one example pipeline once, in process (zonda dags test user_processing)
    python3 dev.py test        # run the whole test suite
    python3 dev.py zonda ARGS  # any zonda command, e.g. python3 dev.py zonda dags list
    python3 dev.py sync        # only create/refresh the development environment
    python3 dev.py run CMD     # run any command inside the environment (.venv/bin first on PATH)

The first call installs uv into ``.tools/`` (a private venv), then ``uv sync`` builds ``.venv`` with every
workspace distribution installed editable. Later calls reuse both, so they start in well under a second.
In another shell, ``.venv/bin/zonda ...`` or ``source .venv/bin/activate`` then ``zonda ...`` work directly.

After the sync, dev.py *becomes* the command (``exec``): there is no parent process left between your shell
and Zonda, so SIGTERM or SIGINT sent to dev.py's pid reach Zonda itself, and it stops with everything it started.
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


def _venv(env: dict[str, str]) -> Path:
    """Where ``uv sync`` puts the environment (``.venv``, or ``UV_PROJECT_ENVIRONMENT`` when set)."""
    chosen = env.get("UV_PROJECT_ENVIRONMENT")
    return (ROOT / chosen).resolve() if chosen else ROOT / ".venv"


def _run(argv: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.setdefault("UV_PYTHON", sys.executable)
    env.setdefault("UV_COMPILE_BYTECODE", "1")
    uv = _uv()
    subprocess.run([uv, "sync", "--all-packages", "--quiet"], cwd=ROOT, env=env, check=True)
    venv_dir = _venv(env)
    if not argv:
        print(
            f"dev.py: environment ready. In a new shell: {_shown(venv_dir)}/bin/zonda ..., "
            f"or `source {_shown(venv_dir)}/bin/activate` and then zonda ...",
            file=sys.stderr,
        )
        return 0
    # What `uv run` would set up, but by replacing this process rather than starting a child: a signal sent
    # to dev.py's pid then reaches the command itself, and nothing is left running when it stops.
    env["VIRTUAL_ENV"] = str(venv_dir)
    env["PATH"] = os.pathsep.join([str(venv_dir / "bin"), env.get("PATH", "")])
    env.pop("PYTHONHOME", None)
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        print(f"dev.py: no command {argv[0]!r} in {_shown(venv_dir)}/bin or on PATH", file=sys.stderr)
        return 127
    except OSError as exc:  # there but not runnable (no execute permission, a bad interpreter line, ...)
        print(f"dev.py: cannot run {argv[0]!r}: {exc.strerror}; check that it is an executable file", file=sys.stderr)
        return 126


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is below it (shorter to copy), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
    if command == "zonda":
        return _run(["zonda", *rest])
    if command == "test":
        return _run(["pytest", *rest])
    if command == "sync":
        return _run([])
    if command == "run":
        return _run(rest)
    print(f"dev.py: unknown command {command!r}; use standalone, demo, zonda, test, sync or run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
