#!/usr/bin/env python3
"""Provider discovery benchmark: 50 installed fake providers, ``ProvidersRegistry.discover()`` and
``zonda providers list``.

usage: .venv/bin/python bench/bench_providers.py [--providers 50] [--repeat 15] [--keep]

Prints figures; never asserts on them. It generates ``--providers`` real distributions in a temp dir (each a
``<name>-1.0.dist-info`` with METADATA and entry_points.txt, plus a package with a manifest module shaped like
the real ones: one connection type with eight fields, hooks, operators, sensors), puts the dir on ``PYTHONPATH``
so ``importlib.metadata`` finds them beside the workspace's three providers, and then, each in a fresh process:

* ``discover()``: ``time.perf_counter`` around the first ``ProvidersRegistry.discover()`` of a fresh process
  (after ``import zonda.providers``), the issue's 20 ms target, median of ``--repeat`` processes, and a second
  call in the same process (manifest modules already imported);
* the entry-point scan alone (``scan_entry_points``), and for comparison what ``importlib.metadata`` costs for
  the same answer (its import, then ``entry_points(group=...)``), with a check that both answers agree;
* ``zonda providers list``: wall time of the console script as a subprocess, one warm-up then the median of 5,
  with the 50 fakes and with only the workspace's three providers.

This machine sets PYTHONDONTWRITEBYTECODE=1, so nothing would ever be cached as bytecode and every run would
pay for compiling: the script runs ``python -m compileall -q`` over the generated modules, core/src and the
providers' sources before timing (and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
HEAVY = ("requests", "psycopg", "elasticsearch", "zonda_http.hooks", "zonda_postgres.hooks")

MANIFEST = '''\
"""Manifest of a generated benchmark provider (data only)."""

manifest = {{
    "name": "fake{i:02d}",
    "package": "zonda-provider-fake{i:02d}",
    "version": "1.0",
    "description": "Generated provider number {i} for bench_providers.py",
    "zonda_versions": ">=0.1,<1",
    "connection_types": [
        {{
            "conn_type": "fake{i:02d}",
            "hook": "zonda_fake{i:02d}.hooks:Fake{i:02d}Hook",
            "display_name": "Fake {i:02d}",
            "fields": {{
                "host": {{"label": "Host", "placeholder": "localhost"}},
                "port": {{"label": "Port", "type": "integer", "default": 1234}},
                "schema": {{"label": "Database"}},
                "login": {{"label": "Login"}},
                "password": {{"label": "Password", "type": "password", "secret": True}},
                "extra.token": {{"label": "Token", "type": "password", "secret": True}},
                "extra.verify": {{"label": "Verify", "type": "boolean", "default": True}},
                "extra.options": {{"label": "Options", "type": "json", "help": "Driver options"}},
            }},
        }}
    ],
    "hooks": ["zonda_fake{i:02d}.hooks:Fake{i:02d}Hook"],
    "operators": ["zonda_fake{i:02d}.operators:Fake{i:02d}Operator", "zonda_fake{i:02d}.operators:Fake{i:02d}Other"],
    "sensors": ["zonda_fake{i:02d}.sensors:Fake{i:02d}Sensor"],
    "triggers": ["zonda_fake{i:02d}.triggers:Fake{i:02d}Trigger"],
    "transfers": [],
    "log_handlers": [],
    "executors": [],
}}
'''

CHILD = textwrap.dedent(
    """
    import json, sys, time
    mode = sys.argv[1]
    from zonda.providers import ProvidersRegistry
    from zonda.providers.registry import scan_entry_points
    if mode == "discover":
        t0 = time.perf_counter()
        registry = ProvidersRegistry.discover()
        t1 = time.perf_counter()
        ProvidersRegistry.discover()
        t2 = time.perf_counter()
        heavy = [m for m in HEAVY if m in sys.modules]
        print(json.dumps({"first": t1 - t0, "again": t2 - t1, "providers": len(registry.providers),
                          "errors": len(registry.errors), "heavy": heavy,
                          "importlib_metadata": "importlib.metadata" in sys.modules}))
    else:  # the entry-point scan alone, then importlib.metadata's answer to the same question
        t0 = time.perf_counter()
        ours = scan_entry_points()
        t1 = time.perf_counter()
        import importlib.metadata
        t2 = time.perf_counter()
        theirs = importlib.metadata.entry_points(group="zonda.providers")
        t3 = time.perf_counter()
        same = sorted((e.name, e.value) for e in ours) == sorted((e.name, e.value) for e in theirs)
        print(json.dumps({"scan": t1 - t0, "import_metadata": t2 - t1, "metadata_scan": t3 - t2, "same": same}))
    """
).replace("HEAVY", repr(HEAVY))


def make_providers(root: Path, count: int) -> None:
    for i in range(count):
        package = root / f"zonda_fake{i:02d}"
        package.mkdir()
        (package / "__init__.py").write_text(f'"""Generated benchmark provider {i}."""\n')
        (package / "manifest.py").write_text(MANIFEST.format(i=i))
        dist_info = root / f"zonda_provider_fake{i:02d}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: zonda-provider-fake{i:02d}\nVersion: 1.0\nRequires-Dist: zonda\n"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[zonda.providers]\nfake{i:02d} = zonda_fake{i:02d}.manifest:manifest\n"
        )
        (dist_info / "RECORD").write_text("")


def compile_all(paths: list[Path]) -> None:
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", *map(str, paths)], check=True)


def child_env(site: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


def run_child(mode: str, env: dict[str, str]) -> dict:
    out = subprocess.run([str(PYTHON), "-c", CHILD, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def time_cli(env: dict[str, str], runs: int = 5) -> tuple[float, str]:
    cmd = [str(VENV_BIN / "zonda"), "providers", "list"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)  # warm-up
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls), first.stdout


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="Keep the generated providers and print where")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="zonda-bench-providers-"))
    try:
        site = tmp / "site"
        site.mkdir()
        make_providers(site, args.providers)
        sources = [site, REPO / "core" / "src", *sorted((REPO / "providers").glob("*/src"))]
        compile_all(sources)
        print(f"python {sys.version.split()[0]}; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE')!r}")
        print(f"bytecode: ran `python -m compileall -q` on {', '.join(str(p) for p in sources)}")
        print(f"{args.providers} generated providers in {site} (+ the workspace's 3)\n")

        env = child_env(site)
        run_child("discover", env)  # warm-up: page cache
        discover, parts = [], []
        for _ in range(args.repeat):  # interleaved, so drift in this machine's load hits both alike
            discover.append(run_child("discover", env))
            parts.append(run_child("parts", env))
        sample = discover[0]
        print(
            f"providers found: {sample['providers']}, errors: {sample['errors']}, "
            f"heavy modules imported: {sample['heavy'] or 'none'}, "
            f"importlib.metadata imported: {sample['importlib_metadata']}"
        )
        print(f"fresh processes: {args.repeat} each; figures are medians (min..max)")
        rows = (
            ("discover(), first call in a fresh process", discover, "first"),
            ("discover(), second call, same process", discover, "again"),
            ("  of which: scan_entry_points()", parts, "scan"),
            ("  for comparison: import importlib.metadata", parts, "import_metadata"),
            ("  for comparison: importlib.metadata.entry_points(group=)", parts, "metadata_scan"),
        )
        for label, runs, key in rows:
            values = [r[key] for r in runs]
            spread = f"({ms(min(values)).strip()}..{ms(max(values)).strip()})"
            print(f"  {label:<58} {ms(statistics.median(values))}   {spread}")
        print(f"  scan_entry_points() == importlib.metadata.entry_points(): {all(p['same'] for p in parts)}")
        print("  target: discovery of 50 providers <= 20 ms\n")

        wall_50, listing = time_cli(env)
        wall_3, _ = time_cli(child_env(None))
        print("zonda providers list, wall (subprocess, 1 warm-up, median of 5):")
        print(f"  with {args.providers + 3} providers  {ms(wall_50)}")
        print(f"  with 3 providers   {ms(wall_3)}")
        print("  target: <= 200 ms")
        print(f"  (listing has {sum(1 for line in listing.splitlines() if 'zonda-provider-' in line)} provider rows)")
        if args.keep:
            print(f"\nkept {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
