"""What every benchmark shares: the environment it ran in, added latency, spreads, and timing a guard process."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from guard.sandbox.aws import AwsSandbox

ROOT = Path(__file__).resolve().parent.parent
LATENCIES_MS = (0, 20)  # 20 ms is the order of a CI runner's round trip to an AWS endpoint
RUNS = 3
PACKAGES = ("boto3", "botocore", "moto", "ecs-deploy")
GUARD = [str(Path(sys.executable).parent / "guard")]


def environment() -> dict[str, Any]:
    """Commit, package versions, cores and load average at the start of a benchmark."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "packages": versions,
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """`{"min", "median", "max", "runs"}` of repeated measurements."""
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits), "runs": len(values)}


def repeat(fn: Callable[[], float], runs: int = RUNS) -> dict[str, Any]:
    """Run `fn` (which returns seconds) `runs` times; its spread."""
    return spread([fn() for _ in range(runs)])


@contextmanager
def fresh_sandbox() -> Iterator[AwsSandbox]:
    """An empty sandbox (moto's state reset) that this process's AWS clients point at."""
    with AwsSandbox() as sandbox:
        sandbox.reset()
        saved = dict(os.environ)
        os.environ.update(sandbox.environ())
        os.environ.pop("AWS_PROFILE", None)
        try:
            yield sandbox
        finally:
            os.environ.clear()
            os.environ.update(saved)


@contextmanager
def latency(sandbox: AwsSandbox, ms: int) -> Iterator[str]:
    """The sandbox holding every request `ms` before answering it: a remote endpoint's round trip.

    The sandbox sleeps in the request's own thread, so the delay costs no CPU and requests in flight overlap, as
    on a network. (A proxy in front would add a second HTTP parse and connection per request on the same cores
    as the process measured.)"""
    saved = sandbox.fills.latency_s
    sandbox.fills.latency_s = ms / 1000
    try:
        yield sandbox.endpoint_url
    finally:
        sandbox.fills.latency_s = saved


# A forked child's ru_maxrss counts the pages it shared with its parent before exec: started straight from the
# benchmark's process (moto and its state), guard would be charged with moto's memory. A small launcher starts it
# instead and reports guard's own peak RSS and wall time.
_LAUNCHER = """
import resource, subprocess, sys, time
started = time.monotonic()
code = subprocess.call(sys.argv[2:])
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    f.write(f"{wall} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(code)
"""


def run_guard(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run `guard ARGS` as a fresh (cold) process; its wall time, peak RSS and CPU time (that process only), the
    sandbox's CPU time meanwhile (this process: the servers answering it), exit code and JSON."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r") as figures:
        before = time.process_time()
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, figures.name, *GUARD, *args], cwd=cwd,
                              env=dict(env or os.environ), stdout=out, stderr=err, check=False)
        sandbox_cpu = time.process_time() - before
        code = proc.returncode
        wall, rss_kib, cpu = figures.read().split()
        out.seek(0)
        err.seek(0)
        try:
            doc = json.loads(out.read())
        except json.JSONDecodeError:
            raise RuntimeError(f"guard {' '.join(args)} exited {code}: {err.read()[-2000:]}") from None
    return {"wall_s": float(wall), "peak_rss_mib": int(rss_kib) / 1024, "cpu_s": float(cpu),
            "sandbox_cpu_s": sandbox_cpu, "exit_code": code, "report": doc}
