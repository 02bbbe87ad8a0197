"""IMG003: images referenced by a mutable tag (latest, branch names) rather than a digest."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.gateways.ecr import ImageInfo
from guard.models import DeployPlan, Severity


class MutableTag(Check):
    """Proves nothing moves under a pinned reference; flags `latest` and branch-like tags.

    Cannot tell whether a tag is mutable in practice: an ECR repository with IMMUTABLE tags still gets a
    warning for `latest`, and a release tag such as `v1.2` in a MUTABLE repository is not flagged.
    """

    id = "IMG003"
    title = "Image pinned (no mutable tag)"
    severity = Severity.WARNING
    proves = "references use a digest or a non-branch tag, so a restart pulls what was verified"
    cannot_prove = "that a release-looking tag is never overwritten in a MUTABLE repository"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Warn on mutable tags, naming the digest to pin to when ECR knows it."""
        flagged = [c.image for t in plan.targets for c in t.containers if c.image and c.image.mutable_tag]
        answers = ctx.ecr.lookup(flagged)
        for target in plan.targets:
            for c in target.containers:
                ref = c.image
                if ref is None or not ref.mutable_tag:
                    continue
                info = answers.get(ref.uri)
                digest = info.digest if isinstance(info, ImageInfo) else None
                pin = f"{ref.registry}/{ref.repository}@{digest}" if digest else None
                yield self.finding(
                    target.name, f"container {c.name}: tag '{ref.tag}' is mutable; a restart may pull a "
                    "different image than the one verified", container=c.name, image=ref.uri, pin_to=pin,
                    remediation=f"pin to {pin}" if pin else "reference the image by digest")
