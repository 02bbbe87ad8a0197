"""Watchdog benchmark: one `guard watch --once` sweep (a cold process) against the computed minimum and a
per-service loop, at 0 and 20 ms per call, for services in one cluster and spread over clusters."""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.meta import LATENCIES_MS, RUNS, environment, fresh_sandbox, latency, run_guard, spread
from guard.gateways.aws import AwsSession
from guard.sandbox.scenarios import Scenario

SERVICES_PER_TASK_DEFINITION = 5
REPOSITORIES = 10
NAIVE_SAMPLE = 100  # the per-service loop is timed over this many services and scaled to the whole fleet
SHAPES = ((1000, 1), (1000, 20))  # (services, clusters)


def _seed(scenario: Scenario, services: int, clusters: int) -> dict[str, int]:
    for c in range(clusters):
        scenario.cluster(f"c{c}")
    tds: list[str] = []
    for t in range(math.ceil(services / SERVICES_PER_TASK_DEFINITION)):
        repo = f"bench/r{t % REPOSITORIES}"
        uri = scenario.repository(repo)
        scenario.push_image(repo, f"t{t}")
        tds.append(scenario.task_definition(f"td{t}", [("app", f"{uri}:t{t}")]))
    for s in range(services):
        scenario.service(f"c{s % clusters}", f"s{s}", tds[s // SERVICES_PER_TASK_DEFINITION], desired=1)
    return {"clusters": clusters, "task_definitions": len(tds)}


def minimum_calls(services: int, clusters: int, task_definitions: int) -> int:
    """ListClusters, then per cluster ListServices (100 per page), DescribeServices (10 per call) and ListTasks;
    one DescribeTaskDefinition per distinct revision; one BatchGetImage and one GetLifecyclePolicy (IMG101; the
    bench's repositories have no policy, so no DescribeImages) per repository (under 100 images each);
    ListFunctions is not swept (`--no-lambda`)."""
    per_cluster = [services // clusters + (1 if c < services % clusters else 0) for c in range(clusters)]
    return (1 + sum(math.ceil(n / 100) + math.ceil(n / 10) + 1 for n in per_cluster)
            + task_definitions + 2 * min(REPOSITORIES, task_definitions))


def naive(clusters: int, limit: int) -> tuple[float, int, int]:
    """Per service, in sequence: describe it, its task definition, its stopped tasks, its images.
    Returns (seconds, API calls, services covered) over the first `limit` services."""
    aws = AwsSession()
    ecs, ecr = aws.client("ecs"), aws.client("ecr")
    started, done = time.monotonic(), 0
    for c in range(clusters):
        token: dict[str, str] = {}
        while done < limit:
            page = ecs.list_services(cluster=f"c{c}", maxResults=100, **token)
            for arn in page["serviceArns"][: limit - done]:
                svc = ecs.describe_services(cluster=f"c{c}", services=[arn])["services"][0]
                td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
                ecs.list_tasks(cluster=f"c{c}", serviceName=svc["serviceName"], desiredStatus="STOPPED")
                for container in td["containerDefinitions"]:
                    repo, tag = container["image"].split("/", 1)[1].rsplit(":", 1)
                    ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}])
                done += 1
            if "nextToken" not in page:
                break
            token = {"nextToken": page["nextToken"]}
    return time.monotonic() - started, aws.stats.total_calls, done


def run(shapes: tuple[tuple[int, int], ...] = SHAPES) -> dict[str, Any]:
    """Each (services, clusters) shape on a fresh sandbox, at every added latency; each sweep a cold process."""
    out: dict[str, Any] = {"benchmark": "guard watch --once (one sweep, cold process)", "environment": environment(),
                           "shapes": []}
    for services, clusters in shapes:
        with fresh_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
            shape = _seed(Scenario(sandbox), services, clusters)
            (Path(tmp) / "guard.toml").write_text("[notify]\nheartbeat = false\n")
            minimum = minimum_calls(services, clusters, shape["task_definitions"])
            for ms in LATENCIES_MS:
                with latency(sandbox, ms):
                    runs = [run_guard(["watch", "--once", "--no-lambda", "--format", "json", "--state",
                                       str(Path(tmp) / f"{ms}-{i}")], Path(tmp)) for i in range(RUNS)]
                    naive_s, naive_calls, covered = naive(clusters, min(services, NAIVE_SAMPLE))
                scale = services / covered
                stats = runs[0]["report"]["stats"]
                sweeps = [r["report"]["stats"]["duration_s"] for r in runs]
                out["shapes"].append({
                    "services": services, **shape, "added_latency_ms": ms,
                    "api_calls": stats["api_calls"]["by_api"], "api_calls_total": stats["api_calls"]["total"],
                    "api_calls_minimum": minimum,
                    "api_calls_over_minimum": round(stats["api_calls"]["total"] / minimum, 3),
                    "lifecycle_policy_reads_per_repository_in_use": round(stats["api_calls"]["by_api"].get(
                        "ecr:GetLifecyclePolicy", 0) / min(REPOSITORIES, shape["task_definitions"]), 3),
                    "sweep_s": spread(sweeps),
                    "wall_s_cold_process": spread([r["wall_s"] for r in runs]),
                    "peak_rss_mib_guard_process": spread([r["peak_rss_mib"] for r in runs], 1),
                    "naive_api_calls": round(naive_calls * scale),
                    "naive_wall_s": round(naive_s * scale, 3),
                    "naive_measured_on": f"{covered} services, scaled x{scale:g}",
                    "speedup_median": round(naive_s * scale / statistics.median(sweeps), 2),
                    "incidents": len(runs[0]["report"].get("incidents", [])),
                })
    return out
