"""Workflow commands survive any text: GitHub's runner reads back exactly the title and message we meant."""

from __future__ import annotations

import re

from guard.exitcodes import ExitCode
from guard.gate import GateReport
from guard.models import Finding, Severity, Unverified
from guard.report.github import workflow_commands
from guard.report.verify import verify_commands
from guard.verify import Status, Target, Verdict, VerifyReport

_UNESCAPE = {"%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ",", "%25": "%"}


def _runner(line: str) -> tuple[str, dict[str, str], str]:
    """Parse `::name k=v,k=v::message` as the Actions runner does (split, then unescape)."""
    match = re.fullmatch(r"::(\w+) ([^:]*)::(.*)", line, re.S)
    assert match, line
    name, props, message = match.groups()

    def unescape(text: str) -> str:
        return re.sub(r"%0D|%0A|%3A|%2C|%25", lambda m: _UNESCAPE[m.group()], text)

    properties = dict(p.split("=", 1) for p in props.split(","))
    return name, {k: unescape(v) for k, v in properties.items()}, unescape(message)


def test_titles_and_messages_round_trip_through_the_runner() -> None:
    target = "ecs:prod/api,edge 100%\nnext"
    message = "image shop/api:v1 missing: 50% of tasks\r\nfail, see ::logs"
    report = GateReport((), (Finding("IMG001", Severity.ERROR, target, message),),
                        (Unverified("GRD001", "ecr:shop/api", "throttled: 3 tries, gave up"),), {}, 0.1,
                        ExitCode.FINDINGS)
    first, second = (_runner(line) for line in workflow_commands(report))
    assert first == ("error", {"title": f"IMG001 {target}"}, message)
    assert second == ("error", {"title": "GRD001 could not verify"}, "ecr:shop/api: throttled: 3 tries, gave up")


def test_verify_annotations_round_trip_too() -> None:
    target = Target("ecs", "api,1", "prod")
    report = VerifyReport((Verdict(target, Status.FAILED, "50% failed:\nCannotPull"),), {}, 1.0)
    [(name, props, message)] = [_runner(line) for line in verify_commands(report)]
    assert (name, props) == ("error", {"title": "guard verify ecs:prod/api,1"})
    assert message == "failed: 50% failed:\nCannotPull"
