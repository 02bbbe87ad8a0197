"""Build the watchdog's Lambda package directory: deploy-guard and its dependencies, never the sandbox.

    python deploy/package.py OUT [--no-deps]

The sandbox (moto, the local GitHub and Anthropic servers, `guard demo`) is a product feature for a
workstation, not for production: it is removed from OUT, and so are console scripts and caches.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRUNE = ("guard/sandbox", "bin")


def build(out: Path, *, deps: bool = True) -> None:
    """pip-install the project into `out`, then prune what production never runs."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(out), str(ROOT)]
    if not deps:
        command.insert(-1, "--no-deps")
    subprocess.run(command, check=True)
    for relative in PRUNE:
        shutil.rmtree(out / relative, ignore_errors=True)
    for cache in out.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    """Command line: OUT and --no-deps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-deps", action="store_true", help="only deploy-guard itself")
    args = parser.parse_args()
    build(args.out, deps=not args.no_deps)


if __name__ == "__main__":
    main()
