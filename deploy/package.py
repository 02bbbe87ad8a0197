"""Build a Lambda package: deploy-guard plus one function's dependencies, for Lambda's Python and architecture.

    python deploy/package.py OUT_DIR [--zip FILE] [--function watchdog|remediation]
                                     [--python-version 3.11] [--arch x86_64|arm64] [--no-deps]

Dependencies are the function's extra in pyproject.toml (`watchdog`: no anthropic SDK; `remediation`: with
it), installed as manylinux wheels for the target Python and architecture, whatever the build host runs.
The sandbox (moto, the local GitHub and Anthropic servers, `guard demo`) is a workstation feature, never
shipped; nor are console scripts and caches. The zip is reproducible: sorted entries, fixed timestamps
and modes, so the same inputs give the same bytes (and Terraform sees no change).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("guard", "checks", "rollback")  # [tool.setuptools.packages.find] in pyproject.toml
PRUNE = ("guard/sandbox", "bin")
FUNCTIONS = ("watchdog", "remediation")
ARCHITECTURES = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def requirements(function: str) -> list[str]:
    """The function's extra in pyproject.toml: what its code imports at run time."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][function])


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                   check=True)


def build(out: Path, *, function: str = "watchdog", python_version: str = "3.11", arch: str = "x86_64",
          deps: bool = True) -> None:
    """Copy deploy-guard and pip-install the function's dependencies into `out`, then prune what never runs."""
    if function not in FUNCTIONS or arch not in ARCHITECTURES:
        raise SystemExit(f"function must be one of {FUNCTIONS}, arch one of {tuple(ARCHITECTURES)}")
    shutil.rmtree(out, ignore_errors=True)
    # deploy-guard itself is pure Python: its import packages are copied as they are (no build step).
    for package in PACKAGES:
        shutil.copytree(ROOT / package, out / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if deps:
        _pip("--no-compile", "--target", str(out), "--platform", ARCHITECTURES[arch], "--implementation", "cp",
             "--python-version", python_version, "--only-binary=:all:", "--upgrade", *requirements(function))
    for relative in PRUNE:
        shutil.rmtree(out / relative, ignore_errors=True)
    for cache in out.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def write_zip(source: Path, target: Path) -> None:
    """Zip `source` reproducibly: sorted paths, fixed timestamps and modes, no directory entries."""
    target.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=EPOCH)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def size(directory: Path) -> int:
    """Bytes of every file under `directory` (Lambda's unpacked size)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--zip", type=Path, help="also write this reproducible zip of OUT")
    parser.add_argument("--function", choices=FUNCTIONS, default="watchdog")
    parser.add_argument("--python-version", default="3.11", help="Lambda's Python (python3.11 -> 3.11)")
    parser.add_argument("--arch", choices=tuple(ARCHITECTURES), default="x86_64")
    parser.add_argument("--no-deps", action="store_true", help="only deploy-guard itself")
    args = parser.parse_args()
    build(args.out, function=args.function, python_version=args.python_version, arch=args.arch,
          deps=not args.no_deps)
    if args.zip:
        write_zip(args.out, args.zip)
    print(f"{args.out}: {size(args.out) / 2**20:.1f} MiB unpacked"
          + (f"; {args.zip}: {args.zip.stat().st_size / 2**20:.1f} MiB" if args.zip else ""))


if __name__ == "__main__":
    main()
