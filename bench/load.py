"""Load: one sweep over 2000 services in 20 clusters, with throttling injected in front of moto (0 ms added).

The sweep runs in this process beside moto (it needs 8 attempts per call, more than the CLI's), so the RSS
figures include moto's; the per-process guard figures are in the gate and watch benchmarks."""

from __future__ import annotations

import os
import resource
import tempfile
from typing import Any

from bench.meta import environment, fresh_sandbox
from bench.watch import minimum_calls
from guard.gateways.aws import AwsSettings
from guard.runtime import Runtime
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchScope

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


def run() -> dict[str, Any]:
    """Sweep under throttling; report calls against the minimum plus retries, and peak RSS."""
    env = environment()
    with fresh_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        task_definitions = _seed(Scenario(sandbox))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with FaultProxy(sandbox.endpoint_url) as proxy:
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            proxy.throttle(THROTTLED, match=operation("DescribeServices"))
            runtime = Runtime(state=tmp, settings=AwsSettings(max_attempts=8))
            report = runtime.watchdog(heartbeat=False).sweep(WatchScope(functions=()))
            os.environ["AWS_ENDPOINT_URL"] = sandbox.endpoint_url
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    minimum = minimum_calls(SERVICES, CLUSTERS, task_definitions)
    calls, retries = report.stats["total"], report.stats["retries"]
    return {
        "benchmark": "guard watch under throttling (one sweep)", "environment": env, "added_latency_ms": 0,
        "services": SERVICES, "clusters": CLUSTERS, "task_definitions": task_definitions,
        "throttled_requests_injected": THROTTLED,
        "api_calls": report.stats["by_api"],
        "api_calls_total": calls,
        "retries": retries,
        "api_calls_minimum": minimum,
        "within_10_percent_of_minimum": calls <= 1.1 * minimum,
        "attempts_over_minimum_plus_injected": round((calls + retries) / (minimum + THROTTLED), 3),
        "unverified": len(report.unverified),
        "wall_s": report.duration_s,
        "peak_rss_mib_with_moto": round(rss_after / 1024, 1),
        "rss_growth_during_sweep_mib": round((rss_after - rss_before) / 1024, 1),
    }
