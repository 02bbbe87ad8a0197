"""`guard rollback`: one person, one command, at 2 a.m. The person decides; the kill switch still applies."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from guard.actions import Action, make_action
from guard.config import RemediateConfig
from guard.errors import GatewayError
from guard.exitcodes import ExitCode
from guard.gateways.aws import AwsSession, call
from guard.journal import EntryKind, Journal
from guard.models import InputError
from guard.policy import DecisionRule
from guard.records import healthy_services, known_good_function, known_good_service
from guard.runtime import Runtime
from guard.state import StateStore


def _target(store: StateStore, aws: AwsSession, config: RemediateConfig, service: str | None,
            function: str | None, target: str | None, alias: str | None) -> Action:
    if service:
        if service.count("/") != 1 or not all(service.split("/")):
            raise InputError(f"--service {service!r}: expected CLUSTER/SERVICE")
        cluster, name = service.split("/")
        if target is not None and "/" not in target:  # family:revision names a recorded ARN when there is one
            target = next((r.task_definition for r in healthy_services(store, cluster, name)
                           if r.task_definition.endswith(f"/{target}")), target)
        if target is None:
            record = known_good_service(store, cluster, name)
            if record is None:
                raise InputError(f"no known-good revision recorded for {service}: pass --to TASK_DEFINITION_ARN")
            target = record.task_definition
        return make_action("ecs_rollback", cluster=cluster, service=name, task_definition=target)
    assert function is not None
    sha = ""
    if target is None:
        fn_record = known_good_function(store, function)
        if fn_record is None or not fn_record.version.isdigit():
            raise InputError(f"no known-good version recorded for {function}: pass --to VERSION")
        target, sha = fn_record.version, fn_record.code_sha256
    else:
        try:  # pin the named version to the code it runs now, so the record check and the precondition see it
            sha = str(call(aws.client("lambda"), "GetFunctionConfiguration", FunctionName=function,
                           Qualifier=target).get("CodeSha256", ""))
        except (ClientError, GatewayError):
            sha = ""
    return make_action("lambda_rollback", function=function, alias=alias or config.lambda_alias,
                       version=target, code_sha256=sha)


def manual_rollback(runtime: Runtime, *, service: str | None, function: str | None, target: str | None,
                    alias: str | None, confirm: Callable[[str], bool] | None,
                    echo: Callable[[str], None], force_unrecorded: bool = False) -> ExitCode:
    """Show the plan, ask, check the kill switch, act, wait with progress, verify; journal every step.

    A target never recorded healthy is a person's choice: asked for explicitly (or `force_unrecorded` for
    scripts; `--yes` alone does not cover it) and journaled as such."""
    store = runtime.store
    action = _target(store, runtime.aws, runtime.config.remediate, service, function, target, alias)
    unrecorded = runtime.policy_gate().recorded(action)
    if unrecorded is not None:
        echo(f"warning: {unrecorded.reason}")
        if not force_unrecorded:
            if confirm is None:
                raise InputError("the target was never recorded healthy: pass --force-unrecorded to roll back "
                                 "to it anyway")
            if not confirm("Roll back to a target never recorded healthy?"):
                echo("not confirmed: nothing changed")
                return ExitCode.FINDINGS
    ctx = runtime.action_context()
    pre = action.precondition(ctx)
    echo(f"plan: {action.describe()}")
    echo(f"  precondition: {'ok' if pre.ok else 'FAILED'}: {pre.reason}")
    if not pre.ok:
        return ExitCode.FINDINGS
    if pre.done_already:
        echo("nothing to do: already on the target revision and steady")
        return ExitCode.CLEAN
    if confirm is not None and not confirm(f"Roll back {action.resource}?"):
        echo("not confirmed: nothing changed")
        return ExitCode.FINDINGS
    stamp = datetime.now(UTC)
    journal = Journal(store, "MAN-" + hashlib.sha256(f"{action.action_id}{stamp.isoformat()}".encode())
                      .hexdigest()[:12])
    actor = "person via guard rollback"
    engaged = runtime.policy_gate().kill_switch()
    if engaged:
        journal.append(EntryKind.KILL_SWITCH, {"action_id": action.action_id, "where": engaged}, actor)
        echo(f"kill switch engaged ({engaged}): nothing changed")
        return ExitCode.FINDINGS
    if unrecorded is not None:
        how = "--force-unrecorded" if force_unrecorded else "an explicit confirmation"
        journal.append(EntryKind.DECISION, {
            "action_id": action.action_id, "action": action.to_json(), "allowed": True,
            "rule": DecisionRule.HUMAN_CHOICE.value,
            "reason": f"{unrecorded.reason}; a person chose it through {how}"}, actor)
    journal.append(EntryKind.ACTION_STARTED, {"action_id": action.action_id, "kind": action.kind,
                                              "action": action.to_json(), "precondition": pre.reason}, actor)
    action.execute(ctx)
    post = action.postcondition(ctx)
    journal.append(EntryKind.VERIFIED, {"action_id": action.action_id, "ok": post.ok, "reason": post.reason}, actor)
    kind = EntryKind.ACTION_SUCCEEDED if post.ok else EntryKind.ACTION_FAILED
    journal.append(kind, {"action_id": action.action_id, "kind": action.kind, "reason": post.reason}, actor)
    echo(f"{'done' if post.ok else 'NOT VERIFIED'}: {post.reason} (journal {journal.incident_id})")
    return ExitCode.CLEAN if post.ok else ExitCode.FINDINGS
