"""REF002: the execution and task roles (or the Lambda's role) exist."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.refs import RefStatus
from guard.models import DeployPlan, Severity, account_problem


class RolesExist(Check):
    """Proves each role ARN a target names exists in the deploying account.

    A role ARN whose account is a placeholder or not 12 digits (`aws_account_id`, `XXXXXXXXXXXX`) is an
    error without a lookup. Cannot prove the role's policies grant what the task needs, nor anything about
    roles in another account (reported as info).
    """

    id = "REF002"
    title = "Execution and task roles exist"
    severity = Severity.ERROR
    proves = "executionRoleArn, taskRoleArn and the Lambda role exist"
    cannot_prove = "that the role's policies are sufficient; roles in other accounts"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Look every distinct role up once."""
        wanted = [(t, label, arn) for t in plan.targets
                  for label, arn in (("execution role", t.execution_role), ("task role", t.task_role)) if arn]
        malformed = {arn: why for _, _, arn in wanted if (why := account_problem(arn)) is not None}
        for target, label, arn in wanted:
            if arn in malformed:
                yield self.finding(target.name, f"{label} {arn} can never resolve: {malformed[arn]}", role=arn,
                                   reason=malformed[arn], remediation="name the role's real account ID")
        wanted = [w for w in wanted if w[2] not in malformed]
        if not wanted:
            return
        answers = ctx.refs.roles(arn for _, _, arn in wanted)
        for target, label, arn in wanted:
            answer = answers[arn]
            if isinstance(answer, GatewayError):
                yield self.unverified(target.name, f"{label} {arn}: {answer}", answer.code)
            elif answer is RefStatus.OTHER_ACCOUNT:
                yield self.finding(target.name, f"{label} {arn} is in another account: not verified",
                                   severity=Severity.INFO, role=arn)
            elif answer is RefStatus.MISSING:
                yield self.finding(target.name, f"{label} {arn} does not exist: tasks cannot start",
                                   role=arn, remediation="recreate the role or point the target at one that exists")
