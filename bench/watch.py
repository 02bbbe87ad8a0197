"""Watchdog benchmark: one sweep's API calls against the computed minimum, and against a per-service loop."""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from guard.gateways.aws import AwsSession
from guard.runtime import Runtime
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchScope

SERVICES_PER_CLUSTER = 50
SERVICES_PER_TASK_DEFINITION = 5
REPOSITORIES = 10


def _seed(scenario: Scenario, services: int) -> dict[str, int]:
    clusters = max(1, math.ceil(services / SERVICES_PER_CLUSTER))
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


def minimum_calls(services: int, clusters: int, task_definitions: int,
                  per_cluster_max: int = SERVICES_PER_CLUSTER) -> int:
    """ListClusters, then per cluster ListServices, DescribeServices (10 per call) and ListTasks; one
    DescribeTaskDefinition per distinct revision; one BatchGetImage per repository (under 100 images each)."""
    per_cluster = [min(per_cluster_max, services - c * per_cluster_max) for c in range(clusters)]
    return (1 + sum(math.ceil(n / 100) + math.ceil(n / 10) + 1 for n in per_cluster)
            + task_definitions + min(REPOSITORIES, task_definitions))


def naive(aws: AwsSession, clusters: int) -> float:
    """What a per-service script does: describe each service, its task definition and image, one by one."""
    started = time.monotonic()
    ecs, ecr = aws.client("ecs"), aws.client("ecr")
    for c in range(clusters):
        for arn in ecs.list_services(cluster=f"c{c}", maxResults=100)["serviceArns"]:
            svc = ecs.describe_services(cluster=f"c{c}", services=[arn])["services"][0]
            td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
            ecs.list_tasks(cluster=f"c{c}", serviceName=svc["serviceName"], desiredStatus="STOPPED")
            for container in td["containerDefinitions"]:
                repo, tag = container["image"].split("/", 1)[1].rsplit(":", 1)
                ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}])
    return time.monotonic() - started


def run(sizes: tuple[int, ...] = (10, 100, 1000)) -> dict[str, Any]:
    """Measure one sweep per size on a fresh sandbox."""
    out: dict[str, Any] = {"benchmark": "guard watch (one sweep)", "sizes": []}
    with AwsSandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(sandbox.environ())
        for size in sizes:
            sandbox.reset()
            shape = _seed(Scenario(sandbox), size)
            report = Runtime(state=str(Path(tmp) / str(size))).watchdog(heartbeat=False).sweep(
                WatchScope(functions=()))
            naive_aws = AwsSession()
            naive_s = naive(naive_aws, shape["clusters"])
            minimum = minimum_calls(size, shape["clusters"], shape["task_definitions"])
            out["sizes"].append({
                "services": size, **shape,
                "api_calls": report.stats["by_api"],
                "api_calls_total": report.stats["total"],
                "api_calls_minimum": minimum,
                "api_calls_over_minimum": round(report.stats["total"] / minimum, 3),
                "naive_api_calls": naive_aws.stats.total_calls,
                "wall_s": report.duration_s,
                "naive_wall_s": round(naive_s, 3),
                "speedup": round(naive_s / report.duration_s, 2) if report.duration_s else None,
                "incidents": len(report.incidents),
            })
    return out
