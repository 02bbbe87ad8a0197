"""The Lambda package as `make lambda-package` builds it: the handler is there, the sandbox never is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_package_holds_the_handler_and_not_the_sandbox(tmp_path: Path) -> None:
    out = tmp_path / "lambda"
    subprocess.run([sys.executable, str(ROOT / "deploy" / "package.py"), str(out), "--no-deps"], check=True)
    assert (out / "guard" / "lambda_handler.py").is_file() and (out / "rollback").is_dir()
    assert not (out / "guard" / "sandbox").exists()
    assert not list(out.rglob("__pycache__"))
    probe = ("import sys, guard.lambda_handler as h; "
             "assert h.__file__.startswith(sys.argv[1]), h.__file__; "
             "print(h.handler({'detail-type': 'ECS Task State Change', 'detail': {'lastStatus': 'RUNNING'}}, None))")
    env = {**os.environ, "PYTHONPATH": str(out), "LAMBDA_TASK_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", probe, str(out)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert "'trigger': 'ignored'" in proc.stdout
