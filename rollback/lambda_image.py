"""Point a Lambda function's code back at the image digest last seen healthy (functions without an alias)."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from guard.actions import Action, ActionContext, Outcome
from guard.gateways.aws import call
from guard.gateways.ecr import Boto3Ecr, ImageInfo, ImageStatus
from guard.models import ImageRef


@dataclass(frozen=True)
class LambdaImageRollback(Action):
    """UpdateFunctionCode(ImageUri=repository@digest): pinned by digest, so a moved tag cannot interfere."""

    function: str
    image_uri: str

    kind = "lambda_image_rollback"
    title = "Roll a Lambda function's image back to its known-good digest"
    iam_actions = frozenset({"lambda:GetFunction", "lambda:UpdateFunctionCode", "ecr:BatchGetImage"})

    @property
    def resource(self) -> str:
        """`lambda:FUNCTION`."""
        return f"lambda:{self.function}"

    def describe(self) -> str:
        """What a person approves."""
        return f"point {self.function} back at {self.image_uri.rsplit('/', 1)[-1]}"

    def _state(self, ctx: ActionContext) -> tuple[str, str, str] | None:
        """(LastUpdateStatus, State, current ImageUri), or None when the function does not exist."""
        try:
            fn = call(ctx.aws.client("lambda"), "GetFunction", FunctionName=self.function)
        except ClientError:
            return None
        cfg = fn.get("Configuration", {})
        return (str(cfg.get("LastUpdateStatus", "")), str(cfg.get("State", "")),
                str(fn.get("Code", {}).get("ImageUri", "")))

    def precondition(self, ctx: ActionContext) -> Outcome:
        """The function exists and the pinned image still exists in ECR."""
        state = self._state(ctx)
        if state is None:
            return Outcome(False, f"function {self.function} does not exist")
        ref = ImageRef.parse(self.image_uri)
        answer = Boto3Ecr(ctx.aws).lookup([ref]).get(ref.uri)
        if not (isinstance(answer, ImageInfo) and answer.status is ImageStatus.PRESENT):
            return Outcome(False, f"the known-good image {self.image_uri} no longer exists")
        update, fn_state, current = state
        if current == self.image_uri and update == "Successful" and fn_state == "Active":
            return Outcome(True, "already on the known-good image", done_already=True)
        return Outcome(True, f"function on {current} ({fn_state}, last update {update})")

    def execute(self, ctx: ActionContext) -> None:
        """UpdateFunctionCode, unless that exact update is already in progress (a resumed run)."""
        state = self._state(ctx)
        if state is not None and state[2] == self.image_uri and state[0] == "InProgress":
            return
        call(ctx.aws.client("lambda"), "UpdateFunctionCode", FunctionName=self.function, ImageUri=self.image_uri)

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """The update finished Successful on the pinned image and the function is Active."""

        def probe() -> Outcome:
            state = self._state(ctx)
            if state is None:
                return Outcome(False, "function disappeared")
            update, fn_state, current = state
            evidence = {"last_update_status": update, "state": fn_state, "image": current}
            if update == "Failed":
                return Outcome(True, "update failed", {**evidence, "failed": True})
            ok = update == "Successful" and fn_state == "Active" and current == self.image_uri
            return Outcome(ok, f"{update}, {fn_state}, on {current}", evidence)

        done = ctx.until(f"{self.function} on the known-good image", probe)
        if done.evidence.get("failed"):
            return Outcome(False, f"Lambda rejected the update: {done.reason}", done.evidence)
        return done
