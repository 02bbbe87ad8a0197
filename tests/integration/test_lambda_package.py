"""The Lambda package as `make lambda-package` builds it: the handler is there, the sandbox never is, the zip is
reproducible, each function gets only its extra's dependencies, and the watchdog stays within its size budget."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
BUDGET = 30 * 2**20  # the watchdog, unpacked
BUILT = ROOT / "build" / "lambda-watchdog"  # what `make lambda-package` leaves


def _package_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_package", ROOT / "deploy" / "package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(out: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "deploy" / "package.py"), str(out), *args], check=True,
                   capture_output=True)


def _probe(out: Path, cwd: Path, *python_flags: str) -> str:
    """Import the handler from `out` in a fresh interpreter and feed it an event that needs no AWS."""
    probe = ("import sys, guard.lambda_handler as h; "
             "assert h.__file__.startswith(sys.argv[1]), h.__file__; "
             "print(h.handler({'detail-type': 'ECS Task State Change', 'detail': {'lastStatus': 'RUNNING'}}, None)); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anthropic', 'moto', 'github', 'rich')))")
    env = {**os.environ, "PYTHONPATH": str(out), "LAMBDA_TASK_ROOT": str(cwd)}
    proc = subprocess.run([sys.executable, *python_flags, "-c", probe, str(out)], env=env, cwd=cwd,
                          capture_output=True, text=True, check=True)
    return proc.stdout


def test_package_holds_the_handler_and_not_the_sandbox(tmp_path: Path) -> None:
    out = tmp_path / "lambda"
    _build(out, "--no-deps")
    assert (out / "guard" / "lambda_handler.py").is_file() and (out / "rollback").is_dir()
    assert not (out / "guard" / "sandbox").exists()
    assert not list(out.rglob("__pycache__"))
    stdout = _probe(out, tmp_path)
    assert "'trigger': 'ignored'" in stdout and stdout.strip().endswith("[]")


def test_zip_is_reproducible(tmp_path: Path) -> None:
    for n in (1, 2):
        _build(tmp_path / f"lambda{n}", "--no-deps", "--zip", str(tmp_path / f"lambda{n}.zip"))
    first, second = (tmp_path / "lambda1.zip").read_bytes(), (tmp_path / "lambda2.zip").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "lambda1.zip") as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) and "guard/lambda_handler.py" in names
    assert not any(n.startswith("guard/sandbox/") or n.endswith("/") for n in names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_each_function_gets_only_its_extra() -> None:
    package = _package_module()
    watchdog, remediation = package.requirements("watchdog"), package.requirements("remediation")
    assert not any(r.startswith(("anthropic", "moto", "rich", "click", "python-terraform")) for r in watchdog)
    assert any(r.startswith("anthropic") for r in remediation) and set(watchdog) <= set(remediation)


def test_built_watchdog_package_is_within_budget() -> None:
    if not (BUILT / "guard" / "lambda_handler.py").is_file():
        pytest.skip(f"no {BUILT.relative_to(ROOT)}: run `make lambda-package` to check the size budget")
    size = sum(p.stat().st_size for p in BUILT.rglob("*") if p.is_file())
    assert size <= BUDGET, f"{size / 2**20:.1f} MiB unpacked, budget {BUDGET / 2**20:.0f} MiB"
    assert not (BUILT / "anthropic").exists() and not (BUILT / "guard" / "sandbox").exists()


@pytest.mark.slow
def test_full_watchdog_build_for_lambda_runs_alone_and_fits(tmp_path: Path) -> None:
    """The real build (manylinux wheels from PyPI, through pip's cache), imported with no site-packages."""
    out = tmp_path / "watchdog"
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine(), "x86_64")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        _build(out, "--function", "watchdog", "--python-version", python, "--arch", arch)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"could not download the dependencies' wheels: {exc.stderr[-300:]!r}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size <= BUDGET, f"{size / 2**20:.1f} MiB unpacked, budget {BUDGET / 2**20:.0f} MiB"
    assert (out / "boto3").is_dir() and not (out / "anthropic").exists() and not (out / "github").exists()
    stdout = _probe(out, tmp_path, "-S")  # -S: no site-packages, only the package and the standard library
    assert "'trigger': 'ignored'" in stdout and stdout.strip().endswith("[]")
