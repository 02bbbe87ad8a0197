"""Golden `--format json` reports of `guard check` and `guard watch --once`, one file per scenario."""

from __future__ import annotations

from pathlib import Path

GOLDEN_DIR = Path(__file__).parent
REGEN_ENV = "GUARD_GOLDEN_REGEN"
"""Set to 1 (as `python -m tests.golden.regen` does) to rewrite the snapshots instead of comparing them."""
