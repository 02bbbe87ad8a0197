"""Gate benchmark: `guard check` of one task definition, every check on, as a cold process, at 0 and 20 ms per call.

Each container has an image (half of them shared), a Secrets Manager secret and an awslogs group; the task has an
execution role and a task role. The naive baseline is what a per-reference script does, one call at a time.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.meta import LATENCIES_MS, RUNS, environment, fresh_sandbox, latency, run_guard, spread
from guard.gateways.aws import AwsSession
from guard.gateways.refs import LOG_GROUPS_PER_CALL
from guard.registry import all_checks
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.scenarios import Scenario

REPOSITORIES = 10
PROBE_MS = 1000  # one extra run at this added latency counts the sequential round trips on the critical path
PROBE_MAX_CONTAINERS = 100  # above this, a run at PROBE_MS takes minutes
NAIVE_SAMPLE = 100  # above this many containers the naive loop is timed (once) on a sample and scaled


def _seed(scenario: Scenario, containers: int) -> dict[str, Any]:
    """A task definition document of `containers` containers over 10 repositories, every reference existing."""
    distinct = max(1, containers // 2)
    uris = []
    for i in range(distinct):
        repo = f"bench/r{i % REPOSITORIES}"
        uri = scenario.repository(repo)
        scenario.push_image(repo, f"t{i}")
        uris.append(f"{uri}:t{i}")
    definitions = []
    for i in range(containers):
        secret = scenario.secret(f"bench/s{i}")
        scenario.log_group(f"/bench/c{i}")
        definitions.append({
            "name": f"c{i}", "image": uris[i % distinct], "essential": i == 0,
            "secrets": [{"name": "TOKEN", "valueFrom": secret}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": f"/bench/c{i}", "awslogs-region": scenario.sandbox.region,
                "awslogs-stream-prefix": "bench"}},
        })
    return {"family": "bench", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
            "memory": "512", "executionRoleArn": scenario.role("bench-exec"),
            "taskRoleArn": scenario.role("bench-task"), "containerDefinitions": definitions}


def minimum_calls(td: dict[str, Any], checks: Sequence[str] = ()) -> int:
    """BatchGetImage per repository (under 100 IDs each), two config reads per distinct image, one DescribeSecret
    per distinct secret, one DescribeLogGroups per 50 groups, one GetRole per role, one STS call for the account,
    and with IMG004 one GetLifecyclePolicy per repository (the bench's repositories have no policy)."""
    images = {c["image"] for c in td["containerDefinitions"]}
    repos = {i.split("/", 1)[1].rsplit(":", 1)[0] for i in images}
    secrets = {s["valueFrom"] for c in td["containerDefinitions"] for s in c.get("secrets", [])}
    groups = {c["logConfiguration"]["options"]["awslogs-group"] for c in td["containerDefinitions"]}
    per_repo = math.ceil(len(images) / len(repos) / 100)
    lifecycle = len(repos) if "IMG004" in checks else 0
    return (len(repos) * per_repo + 2 * len(images) + len(secrets) + math.ceil(len(groups) / LOG_GROUPS_PER_CALL)
            + 2 + 1 + lifecycle)


def naive(td: dict[str, Any], limit: int | None = None) -> tuple[float, int]:
    """Per reference, in sequence: image lookup and platform read, secret, log group; then each role.
    Returns (seconds, API calls) over the first `limit` containers."""
    aws = AwsSession()
    ecr, sm, logs, iam = (aws.client(s) for s in ("ecr", "secretsmanager", "logs", "iam"))
    started = time.monotonic()
    for c in td["containerDefinitions"][:limit]:
        repo, tag = c["image"].split("/", 1)[1].rsplit(":", 1)
        image = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}])["images"][0]
        digest = json.loads(image["imageManifest"])["config"]["digest"]
        url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)["downloadUrl"]
        with urllib.request.urlopen(url) as resp:
            json.loads(resp.read())
        for s in c["secrets"]:
            sm.describe_secret(SecretId=s["valueFrom"])
        logs.describe_log_groups(logGroupNamePrefix=c["logConfiguration"]["options"]["awslogs-group"])
    for role in (td["executionRoleArn"], td["taskRoleArn"]):
        iam.get_role(RoleName=role.rsplit("/", 1)[-1])
    return time.monotonic() - started, aws.stats.total_calls


def _measure(sandbox: AwsSandbox, td: dict[str, Any], ms: int, tmp: Path) -> dict[str, Any]:
    size = len(td["containerDefinitions"])
    path = tmp / "td.json"
    path.write_text(json.dumps(td))
    with latency(sandbox, ms):
        runs = [run_guard(["check", "--task-def", str(path), "--format", "json"], tmp) for _ in range(RUNS)]
        sample = NAIVE_SAMPLE if size > NAIVE_SAMPLE else None
        naive_runs = [naive(td, sample) for _ in range(1 if sample else RUNS)]
    scale = size / sample if sample else 1.0
    report = runs[0]["report"]
    calls = report["stats"]["api_calls"]
    walls = [r["wall_s"] for r in runs]
    naive_walls = [s * scale for s, _ in naive_runs]
    checks = sorted(all_checks())  # every check is on: the bench's directory has no configuration
    minimum = minimum_calls(td, checks)
    return {
        "containers": size, "added_latency_ms": ms,
        "checks_run": checks,
        "gate_s_in_process": spread([r["report"]["stats"]["duration_s"] for r in runs]),
        "findings": len(report.get("findings", [])), "unverified": len(report.get("unverified", [])),
        "api_calls": calls["by_api"], "api_calls_total": calls["total"], "api_calls_minimum": minimum,
        "api_calls_over_minimum": round(calls["total"] / minimum, 3),
        "wall_s_cold_process": spread(walls),
        "cpu_s_guard_process": spread([r["cpu_s"] for r in runs]),
        "cpu_s_sandbox": spread([r["sandbox_cpu_s"] for r in runs]),
        "peak_rss_mib_guard_process": spread([r["peak_rss_mib"] for r in runs], 1),
        "naive_api_calls": round(naive_runs[0][1] * scale),
        "naive_wall_s": spread(naive_walls),
        "naive_measured_on": f"first {sample} containers, scaled x{scale:g}" if sample else "every container",
        "speedup_median": round(statistics.median(naive_walls) / statistics.median(walls), 2),
    }


def critical_path(sandbox: AwsSandbox, td: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Sequential round trips on the gate's critical path: the gate's time at PROBE_MS per call / PROBE_MS.

    At a latency this large the CPU time (moto's and guard's, whatever the machine's load) adds a fraction of one
    round trip, so the count is an upper bound that does not depend on the load; times 20 ms it is what the
    latency alone costs a run.
    """
    path = tmp / "td.json"
    path.write_text(json.dumps(td))
    with latency(sandbox, PROBE_MS):
        run = run_guard(["check", "--task-def", str(path), "--format", "json"], tmp)
    probe_s = float(run["report"]["stats"]["duration_s"])
    trips = probe_s / (PROBE_MS / 1000)
    return {"probe_latency_ms": PROBE_MS, "gate_s_at_probe": round(probe_s, 3), "round_trips": round(trips, 1),
            "at_20_ms_s": round(trips * 0.020, 3)}


def run(sizes: tuple[int, ...] = (100, 1000)) -> dict[str, Any]:
    """Each size on a fresh sandbox, at every added latency, plus the critical path's round trips."""
    out: dict[str, Any] = {"benchmark": "guard check (every check on)", "environment": environment(), "sizes": []}
    for size in sizes:
        with fresh_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
            td = _seed(Scenario(sandbox), size)
            figures = [_measure(sandbox, td, ms, Path(tmp)) for ms in LATENCIES_MS]
            path = critical_path(sandbox, td, Path(tmp)) if size <= PROBE_MAX_CONTAINERS else None
            out["sizes"] += [{**f, "critical_path": path} for f in figures]
    return out
