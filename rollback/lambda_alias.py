"""Point a Lambda alias back at the version whose code was last seen healthy."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from guard.actions import Action, ActionContext, Outcome
from guard.gateways.aws import call


@dataclass(frozen=True)
class LambdaRollback(Action):
    """UpdateAlias(FunctionVersion=version); `code_sha256` pins the version to the known-good code."""

    function: str
    alias: str
    version: str
    code_sha256: str = ""

    kind = "lambda_rollback"
    title = "Roll a Lambda alias back to its known-good version"
    iam_actions = frozenset({"lambda:GetAlias", "lambda:GetFunctionConfiguration", "lambda:UpdateAlias"})

    @property
    def resource(self) -> str:
        """`lambda:FUNCTION`."""
        return f"lambda:{self.function}"

    def describe(self) -> str:
        """What a person approves."""
        return f"point {self.function}:{self.alias} at version {self.version}"

    def _alias_version(self, ctx: ActionContext) -> str | None:
        try:
            return str(call(ctx.aws.client("lambda"), "GetAlias", FunctionName=self.function,
                            Name=self.alias)["FunctionVersion"])
        except ClientError:
            return None

    def precondition(self, ctx: ActionContext) -> Outcome:
        """The alias and the version exist, and the version's code is the known-good code."""
        current = self._alias_version(ctx)
        if current is None:
            return Outcome(False, f"alias {self.function}:{self.alias} does not exist")
        try:
            cfg = call(ctx.aws.client("lambda"), "GetFunctionConfiguration", FunctionName=self.function,
                       Qualifier=self.version)
        except ClientError:
            return Outcome(False, f"version {self.version} of {self.function} does not exist")
        if self.code_sha256 and cfg.get("CodeSha256") != self.code_sha256:
            return Outcome(False, f"version {self.version} runs {cfg.get('CodeSha256')}, not the known-good "
                                  f"{self.code_sha256}")
        if current == self.version:
            return Outcome(True, f"alias already on version {self.version}", done_already=True)
        return Outcome(True, f"alias on version {current}", {"from_version": current})

    def execute(self, ctx: ActionContext) -> None:
        """UpdateAlias: repeating it is harmless."""
        call(ctx.aws.client("lambda"), "UpdateAlias", FunctionName=self.function, Name=self.alias,
             FunctionVersion=self.version)

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """The alias now resolves to the version."""
        current = self._alias_version(ctx)
        ok = current == self.version
        return Outcome(ok, f"alias on version {current}", {"alias_version": current})
