"""REF003: the CloudWatch log groups named by awslogs configurations exist."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.refs import RefStatus
from guard.models import DeployPlan, Severity


class LogGroupsExist(Check):
    """Proves each `awslogs-group` exists in the target's region.

    A missing group makes tasks fail to start unless `awslogs-create-group` is set and the execution role
    may create it; this check cannot see that option's effect, so it reports a warning.
    """

    id = "REF003"
    title = "Log groups exist"
    severity = Severity.WARNING
    proves = "every awslogs-group named by a container exists"
    cannot_prove = "whether awslogs-create-group would create it at start"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """One DescribeLogGroups per distinct group."""
        wanted = [(t, (t.region, g)) for t in plan.targets for g in t.log_groups]
        if not wanted:
            return
        answers = ctx.refs.log_groups(key for _, key in wanted)
        for target, key in wanted:
            answer = answers[key]
            if isinstance(answer, GatewayError):
                yield self.unverified(target.name, f"log group {key[1]}: {answer}", answer.code)
            elif answer is RefStatus.MISSING:
                yield self.finding(target.name, f"log group {key[1]} does not exist: tasks may fail to start",
                                   log_group=key[1], remediation="create the log group before deploying")
