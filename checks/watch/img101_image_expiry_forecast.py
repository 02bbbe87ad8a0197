"""IMG101: a lifecycle policy will expire an image (by digest) that a running service or Lambda function uses."""

from __future__ import annotations

from collections.abc import Iterator

from guard.errors import GatewayError
from guard.lifecycle_policy import RepositoryLifecycle, judge
from guard.models import Cause, InputError, Severity, Signal, Unverified
from guard.watcher import ImageUse, Snapshot, Watcher


class ImageExpiryForecast(Watcher):
    """Proves no lifecycle rule of the repository expires, now or within the look-ahead, a digest in use.

    In use: the digest each ECR image of a service's PRIMARY task definition resolves to, the digests its running
    tasks were pinned to (ECS pins a deployment to the digest it resolved, so a tag that moved since leaves
    them on an untagged image), and the digest of an image Lambda function's current code (CodeSha256).
    The forecast names the rule (priority and description) and the date (age rules) or the number of further
    pushes (count and untagged rules; pushes assumed to look like the repository's newest image). A warning
    within `[watch]` lifecycle_warn_days / lifecycle_warn_pushes, an error when expired now or within
    lifecycle_error_days / lifecycle_error_pushes. Latent: nothing fails until the image is gone and a task
    restarts (ECS105 / LMB102 then report the gone image). Where the evaluator says a digest in use expires now,
    or cannot read the policy (`sinceImagePulled`, archive transitions), the sweep asks ECR's lifecycle policy
    preview for those digests (bounded by `[watch]` lifecycle_preview_watch_seconds) and AWS's answer wins
    (`source: preview`); without an answer the evaluator's stands (`source: evaluator`, `preview: <why not>`),
    and an unreadable policy stays unverified. Cannot foresee a person deleting the image or a policy changed
    later; for a policy the evaluator cannot read, nothing beyond the next run; ECR acts up to 24 hours after an
    image qualifies.
    """

    id = "IMG101"
    title = "Lifecycle policy will expire an image in use"
    severity = Severity.WARNING
    proves = "no lifecycle rule expires, now or within the look-ahead, a digest a service's PRIMARY task " \
        "definition, its running tasks or an image Lambda function uses; an expiry now is confirmed by ECR's " \
        "lifecycle policy preview where it answers"
    cannot_prove = "a person deleting the image; a policy changed later; pushes unlike the newest image; " \
        "images outside ECR; beyond the next run for a policy the evaluator cannot read (sinceImagePulled, " \
        "transitions)"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One latent signal per resource and digest the policy will expire."""
        for use in snap.image_uses():
            yield from self._image(snap, use)

    def _image(self, snap: Snapshot, use: ImageUse) -> Iterator[Signal | Unverified]:
        ref = use.ref
        repo = snap.lifecycles.get(ref.key)
        if isinstance(repo, GatewayError):
            yield Unverified(self.id, use.resource, f"lifecycle policy of {ref.repository}: {repo}", repo.code)
            return
        if not isinstance(repo, RepositoryLifecycle) or repo.policy is None:
            return
        try:
            forecasts = judge(repo, use.digests, snap.now, snap.settings.lifecycle.warn_pushes,
                              snap.previews.get(ref.key))
        except InputError as exc:
            yield self.unverified(use.resource, f"{repo.display}: {exc}")
            return
        for digest, found in sorted(forecasts.items()):
            severity = snap.settings.lifecycle.severity(found, snap.now)
            if severity is None or severity is Severity.INFO:
                continue  # a next run ECR's preview says keeps the image: nothing to act on
            image = f"{ref.registry}/{ref.repository}@{digest}"
            message = f"{use.what}: image {ref.repository}@{digest} {found.describe()} by {ref.repository}'s " \
                f"lifecycle {found.rule.label}: {found.rule.summary}; {use.consequence}"
            evidence = {"image": image, "reference": ref.uri, **found.evidence()}
            yield Signal(self.id, severity, use.resource, Cause.IMAGE_EXPIRY, image, message, "", evidence, True)
