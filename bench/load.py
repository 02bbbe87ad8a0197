"""Load: one `guard watch --once` sweep (a cold process) over 2000 services in 20 clusters, with throttling
injected in front of the sandbox, at 0 and 20 ms per call.

The fault proxy answers ThrottlingException to 40 DescribeServices requests; `AWS_MAX_ATTEMPTS=8` (the standard
variable) gives each call room to retry them all. Peak RSS is the guard process's alone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench.meta import LATENCIES_MS, environment, fresh_sandbox, latency, run_guard
from bench.watch import minimum_calls
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.scenarios import Scenario

CLUSTERS = 20
SERVICES = 2000
PER_TD = 5
THROTTLED = 40  # DescribeServices answers ThrottlingException this many times (spread over the sweep)


def _seed(scenario: Scenario) -> int:
    for c in range(CLUSTERS):
        scenario.cluster(f"c{c}")
    tds = []
    for t in range(SERVICES // PER_TD):
        repo = f"load/r{t % 10}"
        uri = scenario.repository(repo)
        scenario.push_image(repo, f"t{t}")
        tds.append(scenario.task_definition(f"td{t}", [("app", f"{uri}:t{t}")]))
    for s in range(SERVICES):
        scenario.service(f"c{s % CLUSTERS}", f"s{s}", tds[s // PER_TD], desired=1)
    return len(tds)


def _sweep(sandbox: Any, tmp: Path, ms: int) -> dict[str, Any]:
    """One throttled sweep as a cold process at `ms` per call: calls, retries, times and the guard's peak RSS."""
    with latency(sandbox, ms), FaultProxy(sandbox.endpoint_url) as proxy:
        proxy.throttle(THROTTLED, match=operation("DescribeServices"))
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "8"}
        run = run_guard(["watch", "--once", "--no-lambda", "--format", "json", "--state", str(tmp / f"s{ms}")],
                        tmp, env)
        throttled = proxy.received["AmazonEC2ContainerServiceV20141113.DescribeServices"] \
            - proxy.forwarded["AmazonEC2ContainerServiceV20141113.DescribeServices"]
    stats = run["report"]["stats"]
    return {"added_latency_ms": ms, "throttled_answers": throttled, "api_calls": stats["api_calls"]["by_api"],
            "api_calls_total": stats["api_calls"]["total"], "retries": stats["api_calls"]["retries"],
            "unverified": len(run["report"].get("unverified", [])), "exit_code": run["exit_code"],
            "sweep_s": stats["duration_s"], "wall_s_cold_process": round(run["wall_s"], 3),
            "peak_rss_mib_guard_process": round(run["peak_rss_mib"], 1)}


def run() -> dict[str, Any]:
    """Sweep under throttling at each added latency; calls against the minimum plus retries, and peak RSS."""
    env = environment()
    with fresh_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        task_definitions = _seed(Scenario(sandbox))
        (Path(tmp) / "guard.toml").write_text("[notify]\nheartbeat = false\n")
        sweeps = [_sweep(sandbox, Path(tmp), ms) for ms in LATENCIES_MS]
    minimum = minimum_calls(SERVICES, CLUSTERS, task_definitions)
    for figures in sweeps:
        figures["within_10_percent_of_minimum"] = figures["api_calls_total"] <= 1.1 * minimum
        figures["attempts_over_minimum_plus_injected"] = round(
            (figures["api_calls_total"] + figures["retries"]) / (minimum + THROTTLED), 3)
    return {"benchmark": "guard watch --once under throttling (one sweep, cold process)", "environment": env,
            "services": SERVICES, "clusters": CLUSTERS, "task_definitions": task_definitions,
            "throttled_requests_injected": THROTTLED, "api_calls_minimum": minimum, "latencies": sweeps}
