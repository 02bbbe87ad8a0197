"""The Lambda packages as `make lambda-package` builds them: unpacked and zipped size against the budget."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
BUDGET_MIB = {"watchdog": 30.0}  # unpacked; Lambda's own limits are 250 MB unpacked, 50 MB zipped upload
MIB = 2**20


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def run(python_version: str = "3.11", arch: str = "x86_64") -> dict[str, Any]:
    """Build each function's package for Lambda's platform; record sizes, file counts and build time."""
    figures: dict[str, Any] = {"python_version": python_version, "arch": arch, "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for function in ("watchdog", "remediation"):
            out, archive = Path(tmp) / function, Path(tmp) / f"{function}.zip"
            started = time.monotonic()
            subprocess.run([sys.executable, str(ROOT / "deploy" / "package.py"), str(out), "--zip", str(archive),
                            "--function", function, "--python-version", python_version, "--arch", arch],
                           check=True, capture_output=True)
            unpacked = _size(out)
            figures["functions"][function] = {
                "unpacked_mib": round(unpacked / MIB, 2), "zip_mib": round(archive.stat().st_size / MIB, 2),
                "files": sum(1 for p in out.rglob("*") if p.is_file()),
                "budget_mib": BUDGET_MIB.get(function),
                "within_budget": function not in BUDGET_MIB or unpacked <= BUDGET_MIB[function] * MIB,
                "build_s": round(time.monotonic() - started, 1)}
    return figures
