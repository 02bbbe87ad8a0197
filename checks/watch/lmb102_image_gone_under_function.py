"""LMB102: an Active Lambda function whose image no longer exists in ECR."""

from __future__ import annotations

from collections.abc import Iterator

from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.models import Cause, Severity, Signal, Unverified
from guard.watcher import Snapshot, Watcher


class ImageGoneUnderFunction(Watcher):
    """Proves the function's image URI no longer resolves in ECR while the function is still Active.

    Lambda keeps an optimised copy for a while, then fails the function (ImageDeleted); cannot tell when.
    """

    id = "LMB102"
    title = "Image gone under a Lambda function"
    severity = Severity.ERROR
    proves = "the function's image still exists in ECR"
    cannot_prove = "when Lambda will notice and fail the function"

    def run(self, snap: Snapshot) -> Iterator[Signal | Unverified]:
        """One latent signal per function whose image is gone."""
        for fn in snap.functions:
            if fn.config.get("State") == "Failed":
                continue
            answer = snap.images.get(fn.image_uri)
            if isinstance(answer, GatewayError):
                yield self.unverified(fn.resource, f"{fn.image_uri}: {answer}")
            elif isinstance(answer, ImageInfo) and answer.status is not ImageStatus.PRESENT:
                yield self.signal(fn.resource, Cause.MISSING_IMAGE, fn.image_uri,
                                  f"function {fn.name}: image {fn.image_uri} no longer exists; Lambda will fail "
                                  "the function", latent=True, image=fn.image_uri)
