"""IMG001: every image a deploy references exists in ECR."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.ecr import ImageStatus
from guard.models import DeployPlan, Severity


class ImageExists(Check):
    """Proves each ECR image (by tag or digest, sidecars included, any account/region) exists now.

    A reference that can never be pulled (an ECR-shaped host whose account is not 12 digits or whose region
    is not a region, a placeholder such as `XXXXXXXXXXXX` or `region-code`, an unrendered template such as
    `<IMAGE1_NAME>` or `${...}`) is an error without any lookup. Cannot prove the image will still exist at
    deploy time (a person may delete it; IMG004 forecasts the repository's lifecycle policy), nor anything
    about images outside ECR, which are reported as not verified (info).
    """

    id = "IMG001"
    title = "Image exists in ECR"
    severity = Severity.ERROR
    proves = "every ECR image reference (tag or digest) resolves to an image in its account and region; " \
        "malformed, placeholder and template references are errors"
    cannot_prove = "that the image survives until tasks start (IMG004 forecasts lifecycle-policy expiry; a " \
        "person may still delete it); images outside ECR are not looked up"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Look up every distinct ECR reference once; report absent images and repositories."""
        answers = ctx.ecr.lookup(plan.images())
        for target in plan.targets:
            for c in target.containers:
                ref = c.image
                if ref is None:
                    continue
                if ref.problem is not None:
                    yield self.finding(
                        target.name, f"container {c.name}: image {ref.uri} can never be pulled: {ref.problem}",
                        container=c.name, image=ref.uri, reason=ref.problem,
                        remediation="fix the image reference (a real account, region and rendered values)")
                    continue
                if not ref.is_ecr:
                    yield self.finding(
                        target.name, f"container {c.name}: {ref.uri} is outside ECR; its existence is not "
                        "verified", severity=Severity.INFO, container=c.name, image=ref.uri,
                        registry=ref.registry, remediation="mirror the image into ECR to have it verified")
                    continue
                answer = answers[ref.uri]
                if isinstance(answer, GatewayError):
                    yield self.unverified(target.name, f"container {c.name}: {ref.uri}: {answer}", answer.code)
                elif answer.status is ImageStatus.NO_REPOSITORY:
                    yield self.finding(
                        target.name, f"container {c.name}: repository {ref.repository} does not exist in "
                        f"account {ref.account} ({ref.region}), or these credentials cannot read it",
                        container=c.name, image=ref.uri, repository=ref.repository, account=ref.account,
                        region=ref.region, remediation="check the image URI, or grant ecr:BatchGetImage")
                elif answer.status is ImageStatus.ABSENT:
                    yield self.finding(
                        target.name, f"container {c.name}: image {ref.display} does not "
                        f"exist in account {ref.account} ({ref.region})", container=c.name, image=ref.uri,
                        repository=ref.repository, reference=ref.reference, account=ref.account,
                        region=ref.region,
                        remediation="push the image (rerun the build for this commit) before deploying")
