"""The "terraform: N tests ran, M skipped" line, counted right under pytest-xdist (run as a separate pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guard.sandbox.terraform import unavailable_reason

ROOT = Path(__file__).parents[2]
TESTS = {
    "test_marked.py": "import pytest\n\n\n@pytest.mark.terraform\ndef test_one() -> None:\n    pass\n\n\n"
                      "@pytest.mark.terraform\ndef test_two() -> None:\n    pass\n",
    "test_helper_user.py": "from tests.support.terraform import skip_reason\n\n\ndef test_uses() -> None:\n"
                           "    assert skip_reason() is None\n",
    "test_other.py": "def test_plain() -> None:\n    pass\n",
}


def _pytest(tmp_path: Path, mirror: Path, *args: str) -> str:
    for name, text in TESTS.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_PROVIDER_MIRROR": str(mirror)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.terraform", "-p", "no:cacheprovider",
                          "-q", *args, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.skipif(unavailable_reason() == "terraform is not on PATH", reason="terraform is not on PATH")
@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_counts_marked_tests_and_helper_users(tmp_path: Path, workers: list[str]) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    out = _pytest(tmp_path, mirror, *workers)
    assert "terraform: 3 tests ran, 0 skipped\n" in out, out


def test_counts_skips_with_the_reason(tmp_path: Path) -> None:
    out = _pytest(tmp_path, tmp_path / "no-mirror", "-n", "2")
    assert "terraform: 0 tests ran, 3 skipped (" in out and "1 passed, 3 skipped" in out, out
    reason = out.split("terraform: 0 tests ran, 3 skipped (", 1)[1]
    assert reason.startswith("terraform is not on PATH)") or reason.startswith("no hashicorp/aws provider mirror")
