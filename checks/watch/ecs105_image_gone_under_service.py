"""ECS105: a running service whose task definition points at an image that no longer exists."""

from __future__ import annotations

from collections.abc import Iterator

from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.models import Cause, ImageRef, InputError, Severity, Signal, Unverified
from guard.watcher import Snapshot, Watcher


class ImageGoneUnderService(Watcher):
    """Proves an ECR image referenced by the service's PRIMARY task definition is absent now.

    This is the latent hazard: running tasks keep their image, so nothing fails until a task restarts
    (scale-out, host retirement, deploy), and then every start fails. Cannot see images outside ECR.
    """

    id = "ECS105"
    title = "Image gone under a running service"
    severity = Severity.ERROR
    proves = "every ECR image of the service's active task definition still exists"
    cannot_prove = "images outside ECR; whether the running tasks use the same digest"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One latent signal per service and missing image."""
        for svc in snap.services:
            dep = svc.primary
            td = snap.task_definitions.get(str(dep.get("taskDefinition"))) if dep else None
            for c in (td or {}).get("containerDefinitions", []):
                try:
                    ref = ImageRef.parse(str(c.get("image", "")))
                except InputError:
                    continue
                answer = snap.images.get(ref.uri)
                if isinstance(answer, GatewayError):
                    yield self.unverified(svc.resource, f"{ref.uri}: {answer}")
                elif isinstance(answer, ImageInfo) and answer.status is not ImageStatus.PRESENT:
                    yield self.signal(
                        svc.resource, Cause.MISSING_IMAGE, ref.uri,
                        f"container {c.get('name')}: image {ref.display} no longer exists; "
                        "the next task start will fail with CannotPullContainerError",
                        latent=svc.steady, container=str(c.get("name")), image=ref.uri,
                        task_definition=str(dep.get("taskDefinition") if dep else ""))
