"""Gate benchmark: API calls against the computed minimum, wall time against a naive per-image loop."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from pathlib import Path
from typing import Any

from guard import gate
from guard.config import GuardConfig
from guard.context import CheckContext, Commit
from guard.gate import GateInputs, build_plan
from guard.gateways.aws import AwsSession
from guard.models import DeployPlan, ImageRef
from guard.runtime import Runtime
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.plans import PlannedTaskDefinition, plan_document, task_definition_change
from guard.sandbox.scenarios import Scenario

REPOSITORIES = 10
CONTAINERS_PER_TASK = 5
ONLY = frozenset({"IMG001", "IMG002"})


def _seed(scenario: Scenario, containers: int) -> list[PlannedTaskDefinition]:
    """`containers` references over 10 repositories; half the references repeat a shared sidecar image."""
    distinct = max(1, containers // 2)
    uris = []
    for i in range(distinct):
        repo = f"bench/r{i % REPOSITORIES}"
        uri = scenario.repository(repo)
        scenario.push_image(repo, f"t{i}", arch="amd64" if i % 4 else "arm64")
        uris.append(f"{uri}:t{i}")
    refs = [uris[i % distinct] for i in range(containers)]
    tasks = []
    for t in range(math.ceil(containers / CONTAINERS_PER_TASK)):
        chunk = refs[t * CONTAINERS_PER_TASK : (t + 1) * CONTAINERS_PER_TASK]
        tasks.append(PlannedTaskDefinition(f"svc{t}", [(f"c{j}", u) for j, u in enumerate(chunk)],
                                           module=f"module.svc{t}", arch="X86_64" if t % 3 else "ARM64"))
    return tasks


def minimum_calls(plan: DeployPlan) -> int:
    """One BatchGetImage per 100 distinct IDs per repository, plus two reads per distinct config blob."""
    per_repo: dict[tuple[str, str, str], set[str]] = {}
    for ref in plan.images():
        per_repo.setdefault(ref.key, set()).add(ref.reference)
    batches = sum(math.ceil(len(ids) / 100) for ids in per_repo.values())
    return batches + 2 * len(plan.images())


def naive(plan: DeployPlan, aws: AwsSession) -> float:  # counted by `aws.stats` (blob GETs excluded)
    """What a per-container script does: one lookup and one platform read per container, in sequence."""
    started = time.monotonic()
    for target in plan.targets:
        for c in target.containers:
            ref: ImageRef = c.image  # type: ignore[assignment]
            ecr = aws.client("ecr", ref.region)
            image = ecr.batch_get_image(repositoryName=ref.repository, imageIds=[{"imageTag": ref.tag}])["images"][0]
            digest = json.loads(image["imageManifest"])["config"]["digest"]
            url = ecr.get_download_url_for_layer(repositoryName=ref.repository, layerDigest=digest)["downloadUrl"]
            with urllib.request.urlopen(url) as resp:
                json.loads(resp.read())
    return time.monotonic() - started


def run(sizes: tuple[int, ...] = (10, 100, 1000)) -> dict[str, Any]:
    """Measure each size on a fresh sandbox; return the figures."""
    out: dict[str, Any] = {"benchmark": "guard check", "sizes": []}
    with AwsSandbox() as sandbox:
        import os

        os.environ.update(sandbox.environ())
        for size in sizes:
            sandbox.reset()
            tasks = _seed(Scenario(sandbox), size)
            path = Path(f"/tmp/deploy-guard-bench-{size}.json")
            path.write_text(json.dumps(plan_document([task_definition_change(t) for t in tasks])))
            runtime = Runtime(GuardConfig(disabled=frozenset({
                "IMG003", "PRV001", "CFG001", "REF001", "REF002", "REF003", "TFP001"})))
            ctx = runtime.check_context(Commit(None, None))
            report = gate.run(GateInputs(plans=(path,)), ctx)
            plan = build_plan(GateInputs(plans=(path,)), CheckContext(AwsSession()))
            naive_aws = AwsSession()
            naive_s = naive(plan, naive_aws)
            path.unlink()
            calls = report.stats["total"]
            minimum = minimum_calls(plan)
            out["sizes"].append({
                "containers": size,
                "distinct_images": len(plan.images()),
                "api_calls": report.stats["by_api"],
                "api_calls_total": calls,
                "api_calls_minimum": minimum,
                "api_calls_over_minimum": round(calls / minimum, 3),
                "naive_api_calls": naive_aws.stats.total_calls + size,
                "wall_s": report.duration_s,
                "naive_wall_s": round(naive_s, 3),
                "speedup": round(naive_s / report.duration_s, 2) if report.duration_s else None,
                "findings": len(report.findings),
            })
    return out
