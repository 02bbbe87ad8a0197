"""IMG002: the image is built for the CPU architecture the task or function runs on."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.models import DeployPlan, Severity


class PlatformMatches(Check):
    """Proves the image manifest (or one entry of its multi-arch index) is for linux/<task arch>.

    Reads the image index's platforms, or the config blob of a single-architecture image. Cannot prove
    the binaries inside were compiled for that architecture (only what the image declares), and does not
    look at images outside ECR.
    """

    id = "IMG002"
    title = "Image platform matches the runtime architecture"
    severity = Severity.ERROR
    proves = "the image declares linux/<arch> for the task's runtimePlatform or the Lambda's architecture"
    cannot_prove = "that the binaries inside match what the image declares; images outside ECR"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Compare each present ECR image's platforms with its target's architecture."""
        answers = ctx.ecr.lookup(plan.images())
        present = {uri: a for uri, a in answers.items()
                   if isinstance(a, ImageInfo) and a.status is ImageStatus.PRESENT}
        with ThreadPoolExecutor(max_workers=max(1, min(ctx.config.workers, len(present)))) as pool:
            platforms = dict(zip(present, pool.map(ctx.ecr.platforms, present.values()), strict=True))
        for target in plan.targets:
            if target.architecture is None:
                continue
            want = f"linux/{target.architecture.value}"
            for c in target.containers:
                if c.image is None or c.image.uri not in platforms:
                    continue
                got = platforms[c.image.uri]
                if isinstance(got, GatewayError):
                    yield self.unverified(target.name, f"container {c.name}: {c.image.uri}: {got}", got.code)
                elif want not in got:
                    declared = "" if target.architecture_declared else " (the ECS default: no runtimePlatform)"
                    yield self.finding(
                        target.name, f"container {c.name}: image {c.image.display} is "
                        f"built for {', '.join(sorted(got)) or 'no platform'} but runs on {want}{declared}",
                        container=c.name, image=c.image.uri, image_platforms=sorted(got), runtime=want,
                        remediation=f"build for {want} (docker buildx --platform {want}) or change the "
                        "runtime architecture")
