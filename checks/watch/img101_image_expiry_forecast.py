"""IMG101: a lifecycle policy will expire an image (by digest) that a running service or Lambda function uses."""

from __future__ import annotations

from collections.abc import Iterator

from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.lifecycle_policy import RepositoryLifecycle
from guard.models import Cause, ImageRef, InputError, Severity, Signal, Unverified
from guard.watcher import Snapshot, Watcher


class ImageExpiryForecast(Watcher):
    """Proves no lifecycle rule of the repository expires, now or within the look-ahead, a digest in use.

    In use: the digest each ECR image of a service's PRIMARY task definition resolves to, the digests its running
    tasks were pinned to (ECS pins a deployment to the digest it resolved, so a tag that moved since leaves
    them on an untagged image), and the digest of an image Lambda function's current code (CodeSha256).
    The forecast names the rule (priority and description) and the date (age rules) or the number of further
    pushes (count and untagged rules; pushes assumed to look like the repository's newest image). A warning
    within `[watch]` lifecycle_warn_days / lifecycle_warn_pushes, an error when expired now or within
    lifecycle_error_days / lifecycle_error_pushes. Latent: nothing fails until the image is gone and a task
    restarts (ECS105 / LMB102 then report the gone image). Cannot foresee a person deleting the image or a
    policy changed later, and ECR acts up to 24 hours after an image qualifies.
    """

    id = "IMG101"
    title = "Lifecycle policy will expire an image in use"
    severity = Severity.WARNING
    proves = "no lifecycle rule expires, now or within the look-ahead, a digest a service's PRIMARY task " \
        "definition, its running tasks or an image Lambda function uses"
    cannot_prove = "a person deleting the image; a policy changed later; pushes unlike the newest image; " \
        "images outside ECR"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One latent signal per resource and digest the policy will expire."""
        for svc in snap.services:
            dep = svc.primary
            td = snap.task_definitions.get(str(dep.get("taskDefinition"))) if dep else None
            for c in (td or {}).get("containerDefinitions", []):
                name = str(c.get("name"))
                pinned = {str(k.get("imageDigest")) for t in snap.running_tasks.get(svc.resource, ())
                          for k in t.get("containers", []) if k.get("name") == name and k.get("imageDigest")}
                yield from self._image(snap, svc.resource, f"container {name}", str(c.get("image", "")), pinned,
                                       "the next task start fails with CannotPullContainerError")
        for fn in snap.functions:
            if fn.config.get("State") == "Failed":
                continue
            code = str(fn.config.get("CodeSha256", ""))
            yield from self._image(snap, fn.resource, f"function {fn.name}", fn.image_uri,
                                   {f"sha256:{code}"} if code else set(), "Lambda then fails the function")

    def _image(self, snap: Snapshot, resource: str, what: str, uri: str, pinned: set[str],
               consequence: str) -> Iterator[Signal | Unverified]:
        try:
            ref = ImageRef.parse(uri)
        except InputError:
            return
        info = snap.images.get(ref.uri)
        repo = snap.lifecycles.get(ref.key)
        if isinstance(repo, GatewayError):
            yield Unverified(self.id, resource, f"lifecycle policy of {ref.repository}: {repo}", repo.code)
            return
        if not isinstance(repo, RepositoryLifecycle) or repo.policy is None:
            return
        known = {i.digest for i in repo.images} | set(repo.children)
        digests = {d for d in pinned if d in known}
        if isinstance(info, ImageInfo) and info.status is ImageStatus.PRESENT and info.digest:
            digests.add(info.digest)
        try:
            forecasts = repo.forecast(digests, snap.now, snap.settings.lifecycle.warn_pushes)
        except InputError as exc:
            yield self.unverified(resource, f"{repo.display}: {exc}")
            return
        for digest, found in sorted(forecasts.items()):
            severity = snap.settings.lifecycle.severity(found, snap.now)
            if severity is None:
                continue
            image = f"{ref.registry}/{ref.repository}@{digest}"
            message = f"{what}: image {ref.repository}@{digest} {found.describe()} by {ref.repository}'s " \
                f"lifecycle {found.rule.label}: {found.rule.summary}; {consequence}"
            evidence = {"image": image, "reference": ref.uri, **found.evidence()}
            yield Signal(self.id, severity, resource, Cause.IMAGE_EXPIRY, image, message, "", evidence, True)
