"""`guard iam-policy`: the least-privilege IAM policy document for the configured scope.

Each role ("check", "watch", "remediate") contributes actions to named purposes; a purpose is one
statement (one Sid) with one set of resources. A purpose whose resources the scope does not name (no
topic, no state store, no service to roll back) is left out rather than widened to "*". Only read
actions whose scoping the gate cannot know in advance are granted on "*"; every write is scoped.
The remediate role is derived: what the remediation runtime itself calls, plus every action's `iam_actions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from guard.metrics import HEARTBEAT_NAMESPACE

ROLES = frozenset({"check", "watch", "remediate"})

_READ_IMAGES = frozenset({"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                          "ecr:GetLifecyclePolicy", "ecr:DescribeImages",  # these two and the previews: IMG004, IMG101
                          "ecr:StartLifecyclePolicyPreview", "ecr:GetLifecyclePolicyPreview"})
_STATE_OBJECTS = frozenset({"s3:GetObject", "s3:PutObject", "s3:DeleteObject"})
_STATE_LIST = frozenset({"s3:ListBucket"})
_STATE_TABLE = frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"})

# role -> Sid -> actions (the remediate role is `_remediate_grants`). Resources and conditions per Sid are in
# `_resources` and `_conditions`.
_GRANTS: dict[str, dict[str, frozenset[str]]] = {
    "check": {
        "ReadImages": _READ_IMAGES,
        "ReadEcs": frozenset({"ecs:DescribeServices", "ecs:DescribeTaskDefinition"}),
        "ReadLambda": frozenset({"lambda:GetFunction"}),
        "ReadRoles": frozenset({"iam:GetRole"}),
        "ReadReferences": frozenset({
            "secretsmanager:DescribeSecret", "ssm:DescribeParameters", "logs:DescribeLogGroups"}),
        "Identity": frozenset({"sts:GetCallerIdentity"}),
    },
    "watch": {
        "ReadEcs": frozenset({
            "ecs:ListClusters", "ecs:ListServices", "ecs:DescribeServices", "ecs:ListTasks",
            "ecs:DescribeTasks", "ecs:DescribeTaskDefinition"}),
        "ReadImages": _READ_IMAGES,
        "ReadLambda": frozenset({"lambda:ListFunctions", "lambda:GetFunction"}),
        "ReadRoles": frozenset({"iam:GetRole"}),
        "ReadReferences": frozenset({"secretsmanager:DescribeSecret", "kms:DescribeKey"}),  # ECS108
        "Identity": frozenset({"sts:GetCallerIdentity"}),
        "Heartbeat": frozenset({"cloudwatch:PutMetricData"}),
        "Notify": frozenset({"sns:Publish"}),
        "StateObjects": _STATE_OBJECTS,
        "StateList": _STATE_LIST,
        "StateTable": _STATE_TABLE,
    },
}

# What remediation calls outside any action, by Sid: the gate's kill switch, the journal's state store and
# the planners' reads (the playbook lists versions and aliases; the model's describe_resource reads the
# service or function).
_REMEDIATE_RUNTIME: dict[str, frozenset[str]] = {
    "KillSwitch": frozenset({"ssm:GetParameter"}),
    # An S3 kill switch is read with GetObject; without ListBucket S3 answers AccessDenied for an absent key,
    # which the gate must read as engaged, so a switch that is off would stop everything.
    "KillSwitchObject": frozenset({"s3:GetObject"}),
    "KillSwitchBucket": frozenset({"s3:ListBucket"}),
    "ReadEcs": frozenset({"ecs:DescribeServices"}),
    "RollbackFunctions": frozenset({"lambda:ListVersionsByFunction", "lambda:ListAliases", "lambda:GetFunction"}),
    "StateObjects": _STATE_OBJECTS,
    "StateList": _STATE_LIST,
    "StateTable": _STATE_TABLE,
}

# The statement an action's IAM action joins in the remediate role, by the first pattern it matches. Reads
# land on "*" (ReadEcs, and ReadImages without repositories), so only reads match their patterns; an IAM
# action no pattern matches is refused rather than granted somewhere wider than it should be.
_ACTION_SIDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ecs:UpdateService"), "RollbackServices"),
    (re.compile(r"ecs:(Describe|List)[A-Za-z]+"), "ReadEcs"),
    (re.compile(r"lambda:[A-Za-z]+"), "RollbackFunctions"),
    (re.compile(r"ecr:PutImage"), "ProtectImages"),
    (re.compile(r"ecr:(BatchGet|Describe|Get|List)[A-Za-z]+"), "ReadImages"),
    (re.compile(r"sns:Publish"), "Notify"),
)


def _action_sid(kind: str, iam_action: str) -> str:
    """The remediate statement that grants `iam_action` (called by action `kind`)."""
    for pattern, sid in _ACTION_SIDS:
        if pattern.fullmatch(iam_action):
            return sid
    raise ValueError(f"action {kind} calls {iam_action}, which no remediate statement may grant")


def _remediate_grants() -> dict[str, frozenset[str]]:
    """The remediate role by Sid: what the runtime calls plus every action's `iam_actions`."""
    from guard.actions import action_types

    grants = {sid: set(actions) for sid, actions in _REMEDIATE_RUNTIME.items()}
    for kind, cls in action_types().items():
        for iam_action in cls.iam_actions:
            grants.setdefault(_action_sid(kind, iam_action), set()).add(iam_action)
    return {sid: frozenset(actions) for sid, actions in grants.items()}


def _grants(role: str) -> dict[str, frozenset[str]]:
    return _remediate_grants() if role == "remediate" else _GRANTS[role]


def _kinds_needing(sid: str) -> set[str]:
    """The action kinds granted something in statement `sid` (whose resources the allowlist must name)."""
    from guard.actions import action_types

    return {kind for kind, cls in action_types().items()
            if any(_action_sid(kind, iam_action) == sid for iam_action in cls.iam_actions)}


@dataclass(frozen=True)
class PolicyScope:
    """What the policy covers: the account and the resources each capability may touch.

    `ecr_repositories` empty means any repository (its grants are read-only); `sns_topics` are names or
    ARNs; `state_prefix` is the S3 state prefix, its slashes stripped as `S3Store` strips them.
    """

    account: str
    region: str
    partition: str = "aws"
    ecs_services: tuple[tuple[str, str], ...] = ()
    lambda_functions: tuple[str, ...] = ()
    ecr_repositories: tuple[str, ...] = ()
    state_bucket: str | None = None
    state_prefix: str = ""
    state_table: str | None = None
    kill_switch_parameter: str | None = None
    kill_switch_object: str | None = None
    sns_topics: tuple[str, ...] = ()
    protected_repositories: tuple[str, ...] = ()  # where protect_image may add tags (ecr:PutImage)
    roles: frozenset[str] = ROLES


def actions_for(roles: Iterable[str]) -> set[str]:
    """Every action `roles` can be granted, whatever the scope (both state stores included)."""
    return {action for role in _checked_roles(roles) for actions in _grants(role).values()
            for action in actions}


def generate_policy(scope: PolicyScope) -> dict[str, Any]:
    """The IAM policy document for `scope`: one statement per purpose, everything sorted."""
    if not scope.roles:
        raise ValueError("no roles: a policy without statements grants nothing and IAM rejects it")
    _check_names(scope)
    actions: dict[str, set[str]] = {}
    for role in _checked_roles(scope.roles):
        for sid, granted in _grants(role).items():
            actions.setdefault(sid, set()).update(granted)
    resources = _resources(scope)
    conditions = _conditions(scope)
    statements: list[dict[str, Any]] = []
    for sid in sorted(actions):
        if not resources[sid]:
            continue
        statement: dict[str, Any] = {
            "Sid": sid, "Effect": "Allow", "Action": sorted(actions[sid]), "Resource": sorted(resources[sid]),
        }
        if sid in conditions:
            statement["Condition"] = conditions[sid]
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def render_policy(scope: PolicyScope) -> str:
    """The policy document for `scope` as indented JSON."""
    return json.dumps(generate_policy(scope), indent=2)


def _checked_roles(roles: Iterable[str]) -> list[str]:
    chosen = sorted(set(roles))
    unknown = [role for role in chosen if role not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}: expected some of {', '.join(sorted(ROLES))}")
    return chosen


def _check_names(scope: PolicyScope) -> None:
    """Refuse names that would silently widen a scoped ARN (wildcards) or break one (empty parts)."""
    names = [scope.account, scope.region, scope.partition, *scope.lambda_functions, *scope.ecr_repositories,
             *scope.protected_repositories,
             *scope.sns_topics, *(part for pair in scope.ecs_services for part in pair)]
    names += [name for name in (scope.state_bucket, scope.state_table, scope.kill_switch_parameter,
                                scope.kill_switch_object)
              if name is not None]
    for name in names:
        if not name or "*" in name or "?" in name:
            raise ValueError(f"scope names must be non-empty and free of wildcards, got {name!r}")
    if "*" in scope.state_prefix or "?" in scope.state_prefix:
        raise ValueError(f"state_prefix must be free of wildcards, got {scope.state_prefix!r}")


def _arn(scope: PolicyScope, service: str, resource: str) -> str:
    return f"arn:{scope.partition}:{service}:{scope.region}:{scope.account}:{resource}"


def _state_prefix(scope: PolicyScope) -> str:
    """The S3 state prefix with its trailing slash, as `S3Store` builds keys ("" for the whole bucket)."""
    prefix = scope.state_prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _resources(scope: PolicyScope) -> dict[str, list[str]]:
    functions = [_arn(scope, "lambda", f"function:{name}") for name in scope.lambda_functions]
    bucket = f"arn:{scope.partition}:s3:::{scope.state_bucket}" if scope.state_bucket else None
    parameter = scope.kill_switch_parameter
    switch = scope.kill_switch_object.removeprefix("s3://") if scope.kill_switch_object else None
    return {
        "ReadImages": [_arn(scope, "ecr", f"repository/{name}") for name in scope.ecr_repositories] or ["*"],
        "ProtectImages": [_arn(scope, "ecr", f"repository/{name}") for name in scope.protected_repositories],
        "ReadEcs": ["*"],
        "ReadLambda": ["*"],
        "ReadRoles": [f"arn:{scope.partition}:iam::{scope.account}:role/*"],
        "ReadReferences": ["*"],
        "Identity": ["*"],
        "Heartbeat": ["*"],
        "Notify": [topic if topic.startswith("arn:") else _arn(scope, "sns", topic) for topic in scope.sns_topics],
        "StateObjects": [f"{bucket}/{_state_prefix(scope)}*"] if bucket else [],
        "StateList": [bucket] if bucket else [],
        "StateTable": [_arn(scope, "dynamodb", f"table/{scope.state_table}")] if scope.state_table else [],
        "RollbackServices": [_arn(scope, "ecs", f"service/{cluster}/{service}")
                             for cluster, service in scope.ecs_services],
        "RollbackFunctions": functions + [f"{arn}:*" for arn in functions],
        "KillSwitch": [_arn(scope, "ssm", f"parameter/{parameter.lstrip('/')}")] if parameter else [],
        "KillSwitchObject": [f"arn:{scope.partition}:s3:::{switch}"] if switch else [],
        "KillSwitchBucket": [f"arn:{scope.partition}:s3:::{switch.split('/', 1)[0]}"] if switch else [],
    }


def _conditions(scope: PolicyScope) -> dict[str, dict[str, Any]]:
    conditions: dict[str, dict[str, Any]] = {
        "Heartbeat": {"StringEquals": {"cloudwatch:namespace": HEARTBEAT_NAMESPACE}},
    }
    if _state_prefix(scope):
        conditions["StateList"] = {"StringLike": {"s3:prefix": [f"{_state_prefix(scope)}*"]}}
    return conditions


def scope_from_config(config: Any, aws: Any, roles: Iterable[str]) -> PolicyScope:
    """Resolve the configured scope against the live account: allowlist patterns expand to exact ARNs.

    `[[remediate.allow]]` patterns (`ecs:prod/*`) are matched against the services and functions that exist
    now, so the policy names each one; a service created later needs the policy regenerated.
    """
    import fnmatch

    from guard.gateways.aws import call
    from guard.gateways.ecs import Boto3Ecs
    from guard.gateways.lambda_ import Boto3Lambda

    account = str(call(aws.client("sts"), "GetCallerIdentity")["Account"])
    ecs = Boto3Ecs(aws)
    rc = config.remediate
    patterns = [(a.resource, set(a.actions)) for a in rc.allow]
    services: list[tuple[str, str]] = []
    functions: list[str] = []
    service_kinds, lambda_kinds = _kinds_needing("RollbackServices"), _kinds_needing("RollbackFunctions")
    if any(p.startswith("ecs:") and acts & service_kinds for p, acts in patterns):
        for cluster_arn in ecs.list_clusters():
            cluster = cluster_arn.rsplit("/", 1)[-1]
            for arn in ecs.list_services(cluster):
                name = arn.rsplit("/", 1)[-1]
                if any(fnmatch.fnmatchcase(f"ecs:{cluster}/{name}", p) and acts & service_kinds
                       for p, acts in patterns):
                    services.append((cluster, name))
    if any(p.startswith("lambda:") and acts & lambda_kinds for p, acts in patterns):
        functions = [f for f in Boto3Lambda(aws).list_image_functions()
                     if any(fnmatch.fnmatchcase(f"lambda:{f}", p) and acts & lambda_kinds
                            for p, acts in patterns)]
    image_kinds = _kinds_needing("ProtectImages")
    protected = [p[4:] for p, acts in patterns if p.startswith("ecr:") and acts & image_kinds]
    if protected:
        pages = aws.client("ecr").get_paginator("describe_repositories").paginate()
        names = [r["repositoryName"] for page in pages for r in page.get("repositories", [])]
        protected = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in protected)]
    state = str(config.watch.state)
    bucket, prefix, table = None, "", None
    if state.startswith("s3://"):
        bucket, _, prefix = state[5:].partition("/")
    elif state.startswith("dynamodb://"):
        table = state[len("dynamodb://"):]
    topics = tuple(r.topic_arn for r in config.notify.routes if getattr(r, "topic_arn", None))
    return PolicyScope(account=account, region=aws.default_region, ecs_services=tuple(sorted(services)),
                       lambda_functions=tuple(sorted(functions)), state_bucket=bucket, state_prefix=prefix,
                       state_table=table, kill_switch_parameter=rc.kill_switch_parameter,
                       kill_switch_object=rc.kill_switch_object, sns_topics=topics,
                       protected_repositories=tuple(sorted(set(protected))), roles=frozenset(roles))
