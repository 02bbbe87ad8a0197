"""Rewrite every golden snapshot from the current code: `python -m tests.golden.regen [PYTEST-ARGS...]`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.golden import REGEN_ENV

TEST_MODULE = Path(__file__).parents[1] / "integration" / "test_golden.py"


def main(argv: list[str]) -> int:
    """Run the golden tests in regeneration mode; extra arguments go to pytest (e.g. `-k watch`)."""
    os.environ[REGEN_ENV] = "1"
    return int(pytest.main([str(TEST_MODULE), "-q", "-p", "no:cacheprovider", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
