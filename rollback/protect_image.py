"""Keep an in-use ECR image out of its lifecycle policy's reach: one more tag on its digest (PutImage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from guard.actions import Action, ActionContext, Outcome
from guard.errors import GatewayError
from guard.gateways.aws import call, error_code
from guard.gateways.ecr import ACCEPTED_TYPES, Boto3Ecr
from guard.lifecycle_policy import RepositoryLifecycle
from guard.models import ImageRef, InputError


@dataclass(frozen=True)
class ProtectImage(Action):
    """Tag `image` (an ECR reference pinned by digest) with `tag`: BatchGetImage's manifest put back by PutImage.

    ECR has no "retain" flag; what a lifecycle policy spares is decided by tags. A tag takes the image out of an
    untagged rule and out of tagged rules whose prefixes or patterns it does not carry; a higher-priority rule
    selecting the tag's prefix (a keep rule) takes it out of every lower rule. The tag is never moved: one that
    already names another digest fails the precondition. `rule` is the lifecycle rule the incident said would
    expire the image; the postcondition re-evaluates the policy and fails when a rule still expires it.
    """

    image: str
    tag: str
    rule: str = ""

    kind = "protect_image"
    title = "Tag an in-use image so its repository's lifecycle policy keeps it"
    iam_actions = frozenset({"ecr:BatchGetImage", "ecr:PutImage", "ecr:GetLifecyclePolicy", "ecr:DescribeImages"})

    @property
    def ref(self) -> ImageRef:
        """The image reference (InputError unless it is an ECR image pinned by digest)."""
        ref = ImageRef.parse(self.image)
        if not (ref.is_ecr and ref.digest):
            raise InputError(f"protect_image needs an ECR image pinned by digest, got {self.image!r}")
        return ref

    @property
    def resource(self) -> str:
        """`ecr:REPOSITORY`."""
        return f"ecr:{ImageRef.parse(self.image).repository}"

    def describe(self) -> str:
        """What a person approves."""
        why = f" so that lifecycle {self.rule} no longer expires it" if self.rule else ""
        return f"tag {self.image.rsplit('/', 1)[-1]} as {self.tag}{why}"

    def _get(self, ctx: ActionContext, *ids: dict[str, str]) -> dict[str, Any]:
        ref = self.ref
        return call(ctx.aws.client("ecr", ref.region, ref.account), "BatchGetImage", registryId=ref.account,
                    repositoryName=ref.repository, imageIds=list(ids), acceptedMediaTypes=ACCEPTED_TYPES)

    def _tagged(self, ctx: ActionContext) -> str | None:
        """The digest `tag` names now, or None."""
        images = self._get(ctx, {"imageTag": self.tag}).get("images", [])
        return str(images[0]["imageId"]["imageDigest"]) if images else None

    def _expiry(self, ctx: ActionContext) -> str:
        """What the repository's lifecycle policy will do to the digest now ("" when it will not expire it)."""
        ref = self.ref
        answer: RepositoryLifecycle | GatewayError = Boto3Ecr(ctx.aws).lifecycles([ref.key])[ref.key]
        if isinstance(answer, GatewayError):
            raise answer
        found = answer.forecast({str(ref.digest)}, ctx.clock()).get(str(ref.digest))
        return "" if found is None else f"{found.rule.label} ({found.rule.summary}) {found.describe()}"

    def precondition(self, ctx: ActionContext) -> Outcome:
        """The digest exists; the tag is free or already on it (done); what the policy will do to it."""
        digest = str(self.ref.digest)
        if not self._get(ctx, {"imageDigest": digest}).get("images"):
            return Outcome(False, f"{self.image} no longer exists: there is nothing left to protect")
        tagged = self._tagged(ctx)
        if tagged == digest:
            return Outcome(True, f"{self.tag} already names {digest}", done_already=True)
        if tagged is not None:
            return Outcome(False, f"tag {self.tag} already names {tagged}; refusing to move it")
        fate = self._expiry(ctx)
        return Outcome(True, f"lifecycle {fate}" if fate else f"the lifecycle policy does not expire {digest} now")

    def execute(self, ctx: ActionContext) -> None:
        """PutImage of the digest's own manifest under the new tag (the same tag twice is already done)."""
        ref = self.ref
        [image] = self._get(ctx, {"imageDigest": str(ref.digest)})["images"]
        params = {"imageManifestMediaType": image["imageManifestMediaType"]} \
            if image.get("imageManifestMediaType") else {}
        try:
            call(ctx.aws.client("ecr", ref.region, ref.account), "PutImage", registryId=ref.account,
                 repositoryName=ref.repository, imageManifest=image["imageManifest"], imageTag=self.tag,
                 imageDigest=str(ref.digest), **params)
        except ClientError as exc:
            if error_code(exc) != "ImageAlreadyExistsException":
                raise

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """The tag names the digest, and the lifecycle policy, evaluated again, no longer expires it."""
        digest = str(self.ref.digest)
        tagged = self._tagged(ctx)
        evidence = {"tag": self.tag, "digest": digest, "tagged_digest": tagged, "rule_before": self.rule}
        if tagged != digest:
            return Outcome(False, f"tag {self.tag} names {tagged or 'nothing'}, not {digest}", evidence)
        fate = self._expiry(ctx)
        if fate:
            return Outcome(False, f"{self.tag} names {digest}, but lifecycle {fate}: add a higher-priority rule "
                           f"selecting the tag prefix of {self.tag}", {**evidence, "rule_after": fate})
        return Outcome(True, f"{self.tag} names {digest} and the lifecycle policy no longer expires it", evidence)
