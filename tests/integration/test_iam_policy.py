"""`guard.iam`: the generated policy's shape, and what moto's IAM enforcement proves about it.

What moto (5.2, server mode, `POST /moto-api/reset-auth`) enforces, and what only real IAM does:
- Enforced by moto: the action of each ECS, ECR (`BatchGetImage`, `PutImage`), IAM and S3 call and of
  Lambda's PUT calls (`UpdateAlias`); for S3 and IAM also the resource (the object ARN `bucket/key`, the
  role ARN), so the state prefix and the `role/*` scope of `iam:GetRole` are proven here.
- Evaluated against Resource "*" by moto: ECS, ECR, Lambda, SSM, SNS and the rest. A statement scoped to
  an ARN never matches there, so even the right service is denied. The integration tests therefore
  attach `_as_moto_evaluates(policy)`: the same actions, with those statements widened to "*" (S3, SQS,
  IAM and STS keep their ARNs). Resource scoping of `ecs:UpdateService` and of the Lambda rollback
  actions is real-IAM-only, and is asserted structurally instead.
- Not testable under moto: Lambda GET/DELETE calls (`GetFunction`, `GetAlias`, `ListVersionsByFunction`,
  `ListFunctions`) fail signature checks once auth is on; `cloudwatch:PutMetricData` is checked as
  `monitoring:PutMetricData` (the signing name) and conditions get no request values; the `s3:prefix`
  condition on `s3:ListBucket` is not applied; `sts:GetCallerIdentity` is always allowed; ECR
  `GetDownloadUrlForLayer` is answered by the sandbox's own fill, ahead of moto's checks.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from guard.actions import action_types
from guard.errors import AccessDenied
from guard.gateways.aws import map_error
from guard.iam import ROLES, PolicyScope, actions_for, generate_policy, render_policy
from guard.sandbox.aws import DEFAULT_ACCOUNT, DEFAULT_REGION
from guard.sandbox.scenarios import Scenario

Clients = Callable[[str], Any]
Enforce = Callable[..., dict[str, Clients]]
IAM_TF = Path(__file__).parents[2] / "deploy" / "terraform" / "iam.tf"
ROLE_SETS = [frozenset(c) for n in range(1, len(ROLES) + 1) for c in combinations(sorted(ROLES), n)]
MOTO_SCOPES_RESOURCES = ("s3:", "sqs:", "iam:", "sts:")
STATE_DELETES = {"s3:DeleteObject", "dynamodb:DeleteItem"}
# Grants the deployed Lambda needs as a Lambda, not as the watchdog: its logs, fan-out and shard roles.
LAMBDA_RUNTIME_ONLY = {"logs:CreateLogStream", "logs:PutLogEvents", "lambda:InvokeFunction", "sts:AssumeRole",
                       "ssm:GetParameter"}  # the function reads its configuration parameter at start

SCOPE = PolicyScope(
    account=DEFAULT_ACCOUNT, region=DEFAULT_REGION,
    ecs_services=(("prod", "api"), ("prod", "worker")), lambda_functions=("checkout",),
    ecr_repositories=("shop/api",), state_bucket="guard-state", state_prefix="/prod/", state_table="guard",
    kill_switch_parameter="/guard/kill-switch", sns_topics=("guard-alerts",), protected_repositories=("shop/api",),
)
SERVICE_ARN = f"arn:aws:ecs:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:service/prod/api"


def _scope(roles: set[str], **fields: Any) -> PolicyScope:
    return PolicyScope(account=DEFAULT_ACCOUNT, region=DEFAULT_REGION, roles=frozenset(roles), **fields)


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in policy["Statement"] if s["Sid"] == sid]
    assert len(found) == 1, f"expected one {sid} statement in {json.dumps(policy)}"
    return found[0]


def _actions(policy: dict[str, Any]) -> set[str]:
    return {action for statement in policy["Statement"] for action in statement["Action"]}


# Shape, without AWS


def test_same_scope_renders_identical_json() -> None:
    shuffled = replace(SCOPE, roles=frozenset(["remediate", "check", "watch"]))
    assert render_policy(SCOPE) == render_policy(shuffled) == json.dumps(generate_policy(SCOPE), indent=2)
    policy = generate_policy(SCOPE)
    sids = [s["Sid"] for s in policy["Statement"]]
    assert policy["Version"] == "2012-10-17"
    assert sids == sorted(set(sids))
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == sorted(set(statement["Action"]))
        assert statement["Resource"] == sorted(set(statement["Resource"]))


def test_each_role_grants_exactly_its_documented_actions() -> None:
    lifecycle = {"ecr:GetLifecyclePolicy", "ecr:DescribeImages",  # IMG004, IMG101
                 "ecr:StartLifecyclePolicyPreview", "ecr:GetLifecyclePolicyPreview"}
    check = lifecycle | {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecs:DescribeServices",
             "ecs:DescribeTaskDefinition", "lambda:GetFunction", "iam:GetRole", "secretsmanager:DescribeSecret",
             "ssm:DescribeParameters", "logs:DescribeLogGroups", "sts:GetCallerIdentity"}
    state = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
             "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"}
    watch = lifecycle | {"ecs:ListClusters", "ecs:ListServices", "ecs:DescribeServices", "ecs:ListTasks",
             "ecs:DescribeTasks", "ecs:DescribeTaskDefinition", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
             "lambda:ListFunctions", "lambda:GetFunction", "cloudwatch:PutMetricData", "sns:Publish",
             "iam:GetRole", "sts:GetCallerIdentity", "secretsmanager:DescribeSecret", "kms:DescribeKey"} | state
    remediate = {"ecs:UpdateService", "ecs:DescribeServices", "ecs:DescribeTaskDefinition",
                 "lambda:UpdateAlias", "lambda:GetAlias", "lambda:ListVersionsByFunction",
                 "lambda:UpdateFunctionCode", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
                 "lambda:ListAliases",
                 "ssm:GetParameter", "ecr:BatchGetImage", "sns:Publish",
                 "ecr:PutImage", "ecr:DescribeImages", "ecr:GetLifecyclePolicy"} | state  # protect_image
    assert actions_for({"check"}) == check
    assert actions_for({"watch"}) == watch
    assert actions_for({"remediate"}) == remediate
    assert actions_for(ROLES) == check | watch | remediate
    for roles in ROLE_SETS:
        assert _actions(generate_policy(replace(SCOPE, roles=roles))) == actions_for(roles)


def test_remediate_grants_every_action_what_it_calls() -> None:
    policy = generate_policy(replace(SCOPE, roles=frozenset({"remediate"})))
    for kind, cls in action_types().items():
        assert cls.iam_actions <= _actions(policy), f"{kind} needs {sorted(cls.iam_actions - _actions(policy))}"


def test_an_iam_action_no_statement_may_grant_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(action_types()["redeploy"], "iam_actions", frozenset({"ecs:DeleteService"}))
    with pytest.raises(ValueError, match="redeploy calls ecs:DeleteService"):
        generate_policy(replace(SCOPE, roles=frozenset({"remediate"})))


def test_check_is_read_only() -> None:
    # StartLifecyclePolicyPreview (IAM access level Write) only starts ECR's evaluation of the policy in force:
    # it changes no image, tag, policy or repository.
    for action in actions_for({"check"}) - {"ecr:StartLifecyclePolicyPreview"}:
        assert re.fullmatch(r"[a-z]+:(BatchGet|Describe|Get|List)[A-Za-z]+", action), action


@pytest.mark.parametrize("roles", ROLE_SETS, ids=lambda r: "+".join(sorted(r)))
def test_no_wildcard_or_destructive_action_for_any_role_combination(roles: frozenset[str]) -> None:
    scope = replace(SCOPE, roles=roles)
    policy = generate_policy(scope)
    for statement in policy["Statement"]:
        for action in statement["Action"]:
            service, name = action.split(":")
            assert "*" not in action and "?" not in action
            assert not name.startswith(("Create", "Register")), action
            assert not (service == "iam" and name.startswith("Pass")), action
            if name.startswith("Delete"):
                assert action in STATE_DELETES, action
                assert statement["Sid"] in ("StateObjects", "StateTable")
                assert statement["Resource"] in (["arn:aws:s3:::guard-state/prod/*"],
                                                 [f"arn:aws:dynamodb:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:table/guard"])


def test_remediate_writes_only_the_listed_resources() -> None:
    policy = generate_policy(replace(SCOPE, roles=frozenset({"remediate"})))
    arn = f"arn:aws:{{}}:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{{}}"
    services = _statement(policy, "RollbackServices")
    assert services["Action"] == ["ecs:UpdateService"]
    assert services["Resource"] == [arn.format("ecs", "service/prod/api"), arn.format("ecs", "service/prod/worker")]
    functions = _statement(policy, "RollbackFunctions")
    assert functions["Resource"] == [arn.format("lambda", "function:checkout"),
                                     arn.format("lambda", "function:checkout:*")]
    assert _statement(policy, "KillSwitch")["Resource"] == [arn.format("ssm", "parameter/guard/kill-switch")]
    assert _statement(policy, "StateObjects")["Resource"] == ["arn:aws:s3:::guard-state/prod/*"]
    assert _statement(policy, "StateList")["Condition"] == {"StringLike": {"s3:prefix": ["prod/*"]}}
    assert _statement(policy, "StateTable")["Resource"] == [arn.format("dynamodb", "table/guard")]
    writes = {"ecs:UpdateService", "lambda:UpdateAlias", "lambda:UpdateFunctionCode"}
    for statement in policy["Statement"]:
        if writes & set(statement["Action"]):
            assert "*" not in statement["Resource"], statement


def test_unnamed_resources_are_left_out_not_widened() -> None:
    policy = generate_policy(_scope({"watch", "remediate"}))
    assert {s["Sid"] for s in policy["Statement"]} == {"Heartbeat", "Identity", "ReadEcs", "ReadImages", "ReadLambda",
                                                        "ReadReferences", "ReadRoles"}
    assert "ecs:UpdateService" not in _actions(policy)
    assert _statement(policy, "Heartbeat")["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "DeployGuard"}}


def test_bad_scopes_are_refused() -> None:
    with pytest.raises(ValueError, match="no roles"):
        generate_policy(_scope(set()))
    with pytest.raises(ValueError, match="unknown role"):
        generate_policy(_scope({"admin"}))
    with pytest.raises(ValueError, match="wildcards"):
        generate_policy(_scope({"remediate"}, ecs_services=(("prod", "*"),)))
    with pytest.raises(ValueError, match="wildcards"):
        generate_policy(_scope({"watch"}, state_bucket="b", state_prefix="p*"))


def test_terraform_watchdog_role_grants_the_watch_policy() -> None:
    granted = set(re.findall(r'"([a-z0-9-]+:[A-Z][A-Za-z0-9]*)"', IAM_TF.read_text()))
    watch = _actions(generate_policy(_scope({"watch"}, state_bucket="state", sns_topics=("alerts",))))
    assert watch <= granted, f"iam.tf lacks {sorted(watch - granted)}"
    assert granted - watch == LAMBDA_RUNTIME_ONLY


def test_moto_accepts_every_generated_document(aws: Scenario) -> None:
    iam = aws.client("iam")
    iam.create_user(UserName="validator")
    for roles in ROLE_SETS:
        name = "-".join(sorted(roles))
        iam.put_user_policy(UserName="validator", PolicyName=name,
                            PolicyDocument=render_policy(replace(SCOPE, roles=roles)))
        assert iam.get_user_policy(UserName="validator", PolicyName=name)["PolicyDocument"]


# Under moto's IAM enforcement


def _set_auth(endpoint_url: str, count: str) -> None:
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["status"] == "ok"


def _as_moto_evaluates(policy: dict[str, Any]) -> dict[str, Any]:
    """The same actions; resources widened to "*" where moto only ever asks about "*"."""
    statements = [
        statement if all(a.startswith(MOTO_SCOPES_RESOURCES) for a in statement["Action"])
        else {**statement, "Resource": ["*"]}
        for statement in policy["Statement"]
    ]
    return {**policy, "Statement": statements}


def _clients(session: Any, endpoint_url: str) -> Clients:
    """A client factory for `session`'s keys, against the sandbox, without retries."""
    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1}))
    return client


@pytest.fixture
def enforce(aws: Scenario) -> Iterator[Enforce]:
    """`enforce(name=policy, ...)`: one IAM user per policy (made as admin), then enforcement on.

    Admin calls fail once enforcement is on, so build every resource first. The teardown turns it off
    even when the test fails: it is process-wide, and every later test would break.
    """
    endpoint = aws.sandbox.endpoint_url

    def start(**policies: dict[str, Any]) -> dict[str, Clients]:
        iam = aws.client("iam")
        users: dict[str, Clients] = {}
        for name, policy in policies.items():
            iam.create_user(UserName=name)
            iam.put_user_policy(UserName=name, PolicyName="deploy-guard", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=name)["AccessKey"]
            users[name] = _clients(boto3.Session(aws_access_key_id=key["AccessKeyId"],
                                                 aws_secret_access_key=key["SecretAccessKey"],
                                                 region_name=aws.region), endpoint)
        _set_auth(endpoint, "0")
        return users

    yield start
    _set_auth(endpoint, "inf")


def _assert_denied(action: str, call: Callable[[], Any]) -> None:
    """`call` is refused by policy: the 403 names `action`, and the gateway maps it to AccessDenied."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert f"not authorized to perform: {action}" in str(error.get("Message", "")), error
    service, operation = action.split(":")
    assert isinstance(map_error(caught.value, service, operation), AccessDenied)


def _service(aws: Scenario) -> tuple[str, str]:
    """prod/api on api:1 with a pushed image; returns (image URI, api:2's ARN to roll to)."""
    uri = f"{aws.repository('shop/api')}:v1"
    aws.push_image("shop/api", "v1")
    aws.cluster("prod")
    aws.service("prod", "api", aws.task_definition("api", [("app", uri)]))
    return uri, aws.task_definition("api", [("app", uri)])


def test_remediate_may_roll_back_prod_api_and_nothing_destructive(aws: Scenario, enforce: Enforce) -> None:
    uri, target = _service(aws)
    aws.lambda_function("checkout", uri)
    aws.alias("checkout", "live", "1")
    policy = generate_policy(_scope({"remediate"}, ecs_services=(("prod", "api"),),
                                    lambda_functions=("checkout",)))
    assert _statement(policy, "RollbackServices")["Resource"] == [SERVICE_ARN]
    agent = enforce(agent=_as_moto_evaluates(policy))["agent"]

    updated = agent("ecs").update_service(cluster="prod", service="api", taskDefinition=target)["service"]
    assert (updated["serviceArn"], updated["taskDefinition"]) == (SERVICE_ARN, target)
    assert agent("ecs").describe_services(cluster="prod", services=["api"])["services"][0]["serviceName"] == "api"
    assert agent("lambda").update_alias(FunctionName="checkout", Name="live", FunctionVersion="1")["Name"] == "live"
    assert agent("ecr").batch_get_image(repositoryName="shop/api", imageIds=[{"imageTag": "v1"}])["images"]
    _assert_denied("ecs:DeleteService", lambda: agent("ecs").delete_service(cluster="prod", service="api"))
    _assert_denied("ecs:RegisterTaskDefinition", lambda: agent("ecs").register_task_definition(
        family="api", containerDefinitions=[{"name": "app", "image": uri, "memory": 256}]))
    _assert_denied("ecs:CreateService", lambda: agent("ecs").create_service(
        cluster="prod", serviceName="api2", taskDefinition="api:1"))
    _assert_denied("ecr:PutImage", lambda: agent("ecr").put_image(repositoryName="shop/api", imageManifest="{}"))


def test_moto_cannot_evaluate_ecs_resource_scoping(aws: Scenario, enforce: Enforce) -> None:
    """Why `_as_moto_evaluates` exists: as written, the right service is denied too (moto asks about "*")."""
    _service(aws)
    policy = generate_policy(_scope({"remediate"}, ecs_services=(("prod", "api"),)))
    agent = enforce(agent=policy)["agent"]
    _assert_denied("ecs:UpdateService", lambda: agent("ecs").update_service(
        cluster="prod", service="api", desiredCount=1))
    assert agent("ecs").describe_services(cluster="prod", services=["api"])["services"]


def test_check_may_read_and_not_update(aws: Scenario, enforce: Enforce) -> None:
    _service(aws)
    aws.role("api-task")
    gate = enforce(gate=_as_moto_evaluates(generate_policy(_scope({"check"}))))["gate"]

    assert gate("ecr").batch_get_image(repositoryName="shop/api", imageIds=[{"imageTag": "v1"}])["images"]
    assert gate("ecs").describe_task_definition(taskDefinition="api:1")["taskDefinition"]["family"] == "api"
    assert gate("ecs").describe_services(cluster="prod", services=["api"])["services"]
    assert gate("iam").get_role(RoleName="api-task")["Role"]["RoleName"] == "api-task"
    _assert_denied("ecs:UpdateService", lambda: gate("ecs").update_service(
        cluster="prod", service="api", desiredCount=0))
    _assert_denied("ecs:ListClusters", lambda: gate("ecs").list_clusters())
    _assert_denied("iam:CreateRole", lambda: gate("iam").create_role(
        RoleName="x", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})))


def test_watch_may_sweep_and_not_roll_back(aws: Scenario, enforce: Enforce) -> None:
    uri, _ = _service(aws)
    aws.lambda_function("checkout", uri)
    aws.alias("checkout", "live", "1")
    watchdog = enforce(watchdog=_as_moto_evaluates(generate_policy(_scope({"watch"}))))["watchdog"]
    ecs = watchdog("ecs")

    assert ecs.list_clusters()["clusterArns"] == [f"arn:aws:ecs:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:cluster/prod"]
    assert ecs.list_services(cluster="prod")["serviceArns"] == [SERVICE_ARN]
    assert ecs.describe_services(cluster="prod", services=["api"])["services"][0]["serviceArn"] == SERVICE_ARN
    assert "taskArns" in ecs.list_tasks(cluster="prod", serviceName="api")
    _assert_denied("lambda:UpdateAlias", lambda: watchdog("lambda").update_alias(
        FunctionName="checkout", Name="live", FunctionVersion="1"))
    _assert_denied("ecs:UpdateService", lambda: ecs.update_service(cluster="prod", service="api", desiredCount=0))


def test_state_access_is_scoped_to_the_prefix(aws: Scenario, enforce: Enforce) -> None:
    """S3 is where moto checks resources too: the state grant reaches the prefix and nothing else."""
    s3_admin = aws.client("s3")
    for bucket in ("guard-state", "other"):
        s3_admin.create_bucket(Bucket=bucket)
    s3_admin.put_object(Bucket="guard-state", Key="elsewhere", Body=b"secret")
    policy = generate_policy(_scope({"watch"}, state_bucket="guard-state", state_prefix="prod"))
    s3 = enforce(watchdog=policy)["watchdog"]("s3")

    s3.put_object(Bucket="guard-state", Key="prod/lock", Body=b"1")
    assert s3.get_object(Bucket="guard-state", Key="prod/lock")["Body"].read() == b"1"
    s3.delete_object(Bucket="guard-state", Key="prod/lock")
    denied: list[tuple[str, Callable[[], Any]]] = [
        ("GetObject", lambda: s3.get_object(Bucket="guard-state", Key="elsewhere")),
        ("PutObject", lambda: s3.put_object(Bucket="guard-state", Key="staging/lock", Body=b"1")),
        ("PutObject", lambda: s3.put_object(Bucket="other", Key="prod/lock", Body=b"1")),
    ]
    for operation, call in denied:
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
        assert isinstance(map_error(caught.value, "S3", operation), AccessDenied)


def test_an_s3_kill_switch_is_readable_so_off_never_reads_as_engaged() -> None:
    policy = generate_policy(replace(SCOPE, roles=frozenset({"remediate"}), kill_switch_object="s3://ops/guard/stop"))
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["KillSwitchObject"]["Action"] == ["s3:GetObject"]
    assert by_sid["KillSwitchObject"]["Resource"] == ["arn:aws:s3:::ops/guard/stop"]
    assert by_sid["KillSwitchBucket"]["Resource"] == ["arn:aws:s3:::ops"]
    assert "KillSwitchObject" not in {s["Sid"] for s in generate_policy(replace(SCOPE, roles=frozenset({"remediate"})))
                                      ["Statement"]}
