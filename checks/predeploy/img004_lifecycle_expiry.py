"""IMG004: the repository's lifecycle policy will expire an image the deploy references."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.gateways.refs import pooled
from guard.lifecycle_policy import LifecycleHorizon, PolicyPreview, RepoKey, RepositoryLifecycle, judge, preview_targets
from guard.models import DeployPlan, ImageRef, InputError, Severity


class LifecycleExpiry(Check):
    """Proves the repository's lifecycle policy, as it stands, does not soon expire an ECR image being deployed.

    Reads each repository's policy once (GetLifecyclePolicy) and its images (DescribeImages pages) and forecasts,
    for the digest each reference resolves to now, the rule that will expire it: on the policy's next run, after
    N more pushes (a count rule the release cadence reaches, or an untagged rule once the tag moves away from a
    digest the service stays pinned to) or on a date (an age rule). Expired now or within `[watch]`
    lifecycle_error_days / lifecycle_error_pushes it is an error, within lifecycle_warn_days / _pushes a warning,
    later not reported. Where the forecast says "expires now", or the policy is one the forecast cannot read
    (`sinceImagePulled`, archive transitions), ECR's own lifecycle policy preview is asked for those digests
    (bounded by lifecycle_preview_gate_seconds) and AWS's answer wins (`source: preview`); a next run the preview
    says keeps an image of an unreadable policy is an info finding (nothing beyond it is known). Without a
    preview answer the forecast stands (`preview: <why not>`), and an unreadable policy stays unverified.
    Cannot prove a person will not delete the image, that the policy will not change, nor that future pushes
    look like the newest image (the forecast's assumption).
    """

    id = "IMG004"
    title = "Lifecycle policy will expire the image"
    severity = Severity.ERROR
    proves = "no lifecycle rule of the image's repository expires its digest now or within the error horizon " \
        "(days, or pushes assumed to look like the newest image); expiries within the look-ahead are warnings; " \
        "an expiry now is confirmed by ECR's lifecycle policy preview where it answers"
    cannot_prove = "a person deleting the image; a policy changed later; pushes unlike the newest image; beyond " \
        "the next run for a policy the forecast cannot read (sinceImagePulled, transitions)"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Forecast every referenced digest that exists, one policy read per repository."""
        refs = [r for r in plan.images() if r.is_ecr and r.problem is None]
        answers = ctx.ecr.lookup(refs)
        present = {uri: a for uri, a in answers.items()
                   if isinstance(a, ImageInfo) and a.status is ImageStatus.PRESENT and a.digest}
        lifecycles = ctx.ecr.lifecycles(sorted({a.ref.key for a in present.values()}))
        now = datetime.now(UTC)
        horizon = LifecycleHorizon.from_config(ctx.config.watch)
        wanted: dict[RepoKey, tuple[RepositoryLifecycle, set[str]]] = {}
        for seen in present.values():
            repo = lifecycles[seen.ref.key]
            if isinstance(repo, RepositoryLifecycle) and seen.digest:
                wanted.setdefault(seen.ref.key, (repo, set()))[1].update(
                    preview_targets(repo, {seen.digest}, now, horizon.warn_pushes))
        asked = sorted(key for key, (_, digests) in wanted.items() if digests)  # repositories previewed concurrently
        previews = pooled(lambda key: ctx.ecr.preview(*wanted[key], horizon.preview_gate_s), asked,
                          ctx.config.workers)
        for target in plan.targets:
            for c in target.containers:
                ref = c.image
                info = present.get(ref.uri) if ref is not None else None
                if ref is None or info is None or info.digest is None:
                    continue  # IMG001 reports what is absent or could not be looked up
                answer = lifecycles[ref.key]
                if isinstance(answer, GatewayError):
                    yield self.unverified(target.name, f"container {c.name}: lifecycle policy of "
                                          f"{ref.repository}: {answer}", answer.code)
                    continue
                yield from self._forecast(target.name, c.name, ref, info.digest, answer, now, horizon,
                                          previews.get(ref.key))

    def _forecast(self, target: str, container: str, ref: ImageRef, digest: str, repo: RepositoryLifecycle,
                  now: datetime, horizon: LifecycleHorizon, preview: PolicyPreview | None) -> Iterator[Result]:
        try:
            found = judge(repo, {digest}, now, horizon.warn_pushes, preview).get(digest)
        except InputError as exc:
            yield self.unverified(target, f"container {container}: {repo.display}: {exc}", "UnreadablePolicy")
            return
        severity = horizon.severity(found, now) if found is not None else None
        if found is None or severity is None:
            return
        evidence: dict[str, str | int | bool | None] = {"container": container, "image": ref.uri,
                                                        "repository": ref.repository, **found.evidence()}
        if severity is Severity.INFO:
            yield self.finding(target, f"container {container}: image {ref.display} ({digest}) {found.describe()}: "
                               f"{found.note}", severity=severity, remediation="", **evidence)
            return
        yield self.finding(
            target, f"container {container}: image {ref.display} ({digest}) {found.describe()} by "
            f"{repo.key[2]}'s lifecycle {found.rule.label}: {found.rule.summary}",
            severity=None if severity is Severity.ERROR else severity, **evidence,
            remediation="deploy an image the policy keeps (a tag its keep rules select, or a newer push), or "
            "change the lifecycle policy before deploying")
