"""The Terraform module: formatted, its role grants every API a sweep calls (nothing that writes ECS), and applied
by terraform to the sandbox it deploys what the handler needs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guard.iam import PolicyScope, generate_policy
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from tests.support.terraform import skip_reason
from tests.support.tf_module import TerraformRoot, packaged, write_root
from tests.support.watchrun import Sweep, steady_service

MODULE = Path(__file__).parents[2] / "deploy" / "terraform"
IAM_PREFIX = {"ecs": "ecs", "ecr": "ecr", "lambda": "lambda", "cloudwatch": "cloudwatch", "s3": "s3", "sns": "sns",
              "iam": "iam", "sts": "sts"}


def _granted() -> set[str]:
    return set(re.findall(r'"([a-z0-9-]+:[A-Za-z*]+)"', (MODULE / "iam.tf").read_text()))


def test_module_is_formatted() -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    proc = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(MODULE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_role_covers_every_api_a_sweep_calls(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.lambda_function("fn", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    sim.restart_tasks("prod", "api")
    sim.tick()
    report = sweep(heartbeat=True)
    called = {f"{IAM_PREFIX[k.split(':')[0]]}:{k.split(':')[1]}" for k in report.stats["by_api"]
              if k.split(":")[1] != "LayerDownload"}
    assert {"ecs:DescribeTasks", "lambda:GetFunction", "cloudwatch:PutMetricData"} <= called
    assert called <= _granted(), called - _granted()


def test_role_cannot_change_ecs_or_lambda() -> None:
    granted = _granted()
    assert not {a for a in granted if a.startswith(("ecs:Update", "ecs:Delete", "ecs:Create", "lambda:Update",
                                                     "lambda:Delete", "iam:")) and a != "iam:GetRole"}


# ---- the module applied by terraform to the sandbox ---------------------------------------------------------

SHARD = {"account": "210987654321", "region": "eu-west-1", "role_arn": "arn:aws:iam::210987654321:role/guard-read"}


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The watchdog package (deploy-guard only: dependencies come from this venv) and its zip."""
    out = tmp_path_factory.mktemp("package")
    subprocess.run([sys.executable, str(MODULE.parents[1] / "deploy" / "package.py"), str(out / "lambda"),
                    "--zip", str(out / "lambda.zip"), "--no-deps"], check=True, capture_output=True)
    return out / "lambda", out / "lambda.zip"


@pytest.fixture(scope="session")
def tf_root(aws_sandbox: AwsSandbox, tmp_path_factory: pytest.TempPathFactory) -> TerraformRoot:
    """The root module, initialised once from the provider mirror only."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    root = write_root(tmp_path_factory.mktemp("tf"), aws_sandbox)
    root.run("init", "-input=false", "-backend=false")
    return root


def test_module_inits_and_validates_with_only_the_aws_provider(tf_root: TerraformRoot) -> None:
    tf_root.run("validate")
    lock = (tf_root.path / ".terraform.lock.hcl").read_text()
    assert "registry.terraform.io/hashicorp/aws" in lock and "hashicorp/archive" not in lock
    providers = tf_root.run("providers").stdout
    assert "hashicorp/aws" in providers and "archive" not in providers


def _alarms(aws: Scenario) -> dict[str, dict[str, Any]]:
    return {a["AlarmName"]: a for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}


def test_module_applied_to_the_sandbox_runs_the_packaged_handler(aws: Scenario, sim: EcsSimulator,
                                                                 tf_root: TerraformRoot, package: tuple[Path, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tf_root.plan(package_zip=str(package[1]), clusters=["prod"], shards=[SHARD])
    created = {c["address"] for c in plan["resource_changes"] if c["change"]["actions"] == ["create"]}
    assert {"module.guard.aws_lambda_function.watchdog", 'module.guard.aws_cloudwatch_metric_alarm.heartbeat["home"]',
            'module.guard.aws_ssm_parameter.config["deploy-guard"]'} <= created
    assert not any("remediation" in address for address in created)
    out = tf_root.apply_plan()["guard"]
    fn = aws.client("lambda").get_function(FunctionName="deploy-guard")["Configuration"]
    assert (fn["Handler"], fn["Runtime"], fn["Architectures"], fn["Timeout"]) == (
        "guard.lambda_handler.handler", "python3.11", ["x86_64"], 120)
    assert fn["Role"] == out["role_arn"] and fn["Environment"]["Variables"]["AWS_MAX_ATTEMPTS"] == "5"
    assert fn["CodeSize"] == package[1].stat().st_size
    events = aws.client("events")
    schedule = events.describe_rule(Name="deploy-guard-sweep")
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    [target] = events.list_targets_by_rule(Rule="deploy-guard-sweep")["Targets"]
    assert target["Arn"] == fn["FunctionArn"]
    assert json.loads(target["Input"]) == {"detail-type": "Scheduled Event", "shards": [SHARD], "sweep_home": True,
                                           "remediation_function": None}
    pattern = json.loads(events.describe_rule(Name="deploy-guard-task-stopped")["EventPattern"])
    assert pattern["detail"] == {"lastStatus": ["STOPPED"],
                                 "clusterArn": ["arn:aws:ecs:us-east-1:123456789012:cluster/prod"]}
    [task_target] = events.list_targets_by_rule(Rule="deploy-guard-task-stopped")["Targets"]
    assert task_target["Arn"] == fn["FunctionArn"] and "InputTransformer" not in task_target
    iam = aws.client("iam")
    role = out["role_arn"].rsplit("/", 1)[-1]
    [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    sids = {s["Sid"]: s for s in (json.loads(policy) if isinstance(policy, str) else policy)["Statement"]}
    assert sids["Shards"]["Resource"] == SHARD["role_arn"]
    assert sids["Config"]["Resource"] == "arn:aws:ssm:us-east-1:123456789012:parameter/deploy-guard/guard.toml"
    assert not any("UpdateService" in str(s["Action"]) for s in sids.values())
    bucket = out["state_bucket"]
    assert aws.client("s3").get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ssm = aws.client("ssm")
    assert ssm.get_parameter(Name="/deploy-guard/kill-switch")["Parameter"]["Value"] == "off"
    config = ssm.get_parameter(Name="/deploy-guard/guard.toml")["Parameter"]["Value"]
    assert f'state = "s3://{bucket}/watch"' in config and 'clusters = ["prod"]' in config
    alarms = _alarms(aws)
    for shard in ("home", "210987654321/eu-west-1"):
        beat = alarms[f"deploy-guard-heartbeat-missing-{shard.replace('/', '-')}"]
        assert (beat["MetricName"], beat["Dimensions"], beat["TreatMissingData"], beat["ComparisonOperator"]) == (
            "Heartbeat", [{"Name": "Shard", "Value": shard}], "breaching", "LessThanThreshold")
        blind = alarms[f"deploy-guard-unverified-{shard.replace('/', '-')}"]
        assert (blind["MetricName"], blind["Threshold"]) == ("Unverified", 0)
    assert alarms["deploy-guard-errors"]["Dimensions"] == [{"Name": "FunctionName", "Value": "deploy-guard"}]
    assert all(a["AlarmActions"] == [out["alerts_topic_arn"]] for a in alarms.values())
    assert "deploy-guard-remediate" not in {f["FunctionName"] for f in aws.client("lambda").list_functions()[
        "Functions"]}
    _run_packaged_handler(aws, sim, package[0], out["state_bucket"], monkeypatch)


def _run_packaged_handler(aws: Scenario, sim: EcsSimulator, package: Path, bucket: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler imported from the package, configured by the module, invoked as EventBridge would."""
    aws.client("ecs", account=SHARD["account"], region=SHARD["region"]).create_cluster(clusterName="prod")
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    events = aws.client("events")
    [target] = events.list_targets_by_rule(Rule="deploy-guard-sweep")["Targets"]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deploy-guard")  # config from the module's SSM parameter
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(package))
    context = type("Context", (), {"function_name": "deploy-guard", "aws_request_id": "r-1"})()
    with packaged(package) as lambda_handler:
        first = lambda_handler.handler({**json.loads(target["Input"]), "id": "e1"}, context)
        assert first["shard"] == "home" and first["fanned_out"] == ["210987654321/eu-west-1"]
        assert first["exit_code"] == 1 and len(first["opened"]) == 1
        [(function, payload)] = aws.sandbox.invocations
        shard = lambda_handler.handler(json.loads(payload), context)
        assert function == "deploy-guard" and shard["shard"] == "210987654321/eu-west-1"
        sim.restart_tasks("prod", "api")
        sim.tick()
        stopped = json.loads((Path(__file__).parents[1] / "events" / "ecs_task_stopped.json").read_text())
        task = lambda_handler.handler(stopped, context)
        assert task["trigger"] == "task" and set(first["opened"]) <= set(task["open_incidents"])
        other = {**stopped, "detail": {**stopped["detail"], "clusterArn": stopped["detail"]["clusterArn"][:-4]
                                       + "staging"}}
        assert lambda_handler.handler(other, context)["trigger"] == "ignored"
    keys = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert "watch/incidents/open.json" in keys
    assert any(k.startswith("watch/shards/210987654321/eu-west-1/") for k in keys)
    metrics = aws.client("cloudwatch").list_metrics(Namespace="DeployGuard", MetricName="Heartbeat")["Metrics"]
    assert {m["Dimensions"][0]["Value"] for m in metrics} == {"home", "210987654321/eu-west-1"}


def _statements(policy: Any) -> dict[str, tuple[list[str], list[str], Any]]:
    """Sid -> (actions, resources, condition), lists sorted: IAM's single values become one-item lists."""
    doc = json.loads(policy) if isinstance(policy, str) else policy

    def listed(value: Any) -> list[str]:
        return sorted([value] if isinstance(value, str) else value)

    return {s["Sid"]: (listed(s["Action"]), listed(s["Resource"]),
                       {op: {k: listed(v) for k, v in cond.items()} for op, cond in s.get("Condition", {}).items()})
            for s in doc["Statement"]}


def test_remediation_deployed_in_act_mode_rolls_back_a_broken_service(
        aws: Scenario, tf_root: TerraformRoot, package: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    sim = EcsSimulator(aws.sandbox)  # the handlers read the wall clock, so the simulator does too
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    good = steady_service(aws, sim, "api", f"{repo}:v1")
    allow = [{"resource": "ecs:prod/api", "actions": ["ecs_rollback", "redeploy"]}]
    out = tf_root.apply(package_zip=str(package[1]), clusters=["prod"], remediation_enabled=True,
                        remediation_mode="act", remediation_allow=allow)["guard"]
    assert out["remediation_function_name"] == "deploy-guard-remediate"
    fn = aws.client("lambda").get_function(FunctionName="deploy-guard-remediate")["Configuration"]
    assert fn["Handler"] == "guard.lambda_handler.remediate_handler" and fn["Role"] != out["role_arn"]
    role = fn["Role"].rsplit("/", 1)[-1]
    [name] = aws.client("iam").list_role_policies(RoleName=role)["PolicyNames"]
    deployed = _statements(aws.client("iam").get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
    scope = PolicyScope(account="123456789012", region="us-east-1", ecs_services=(("prod", "api"),),
                        state_bucket=out["state_bucket"], state_prefix="watch",
                        kill_switch_parameter=out["kill_switch_parameter"], sns_topics=(out["alerts_topic_arn"],),
                        roles=frozenset({"remediate"}))
    hosting = {"Config", "Logs"}  # what running as a Lambda needs beyond `guard iam-policy --role remediate`
    assert {k: v for k, v in deployed.items() if k not in hosting} == _statements(generate_policy(scope))
    config = aws.client("ssm").get_parameter(Name="/deploy-guard-remediate/guard.toml")["Parameter"]["Value"]
    assert 'mode = "act"' in config and 'resource = "ecs:prod/api"' in config
    [target] = aws.client("events").list_targets_by_rule(Rule="deploy-guard-sweep")["Targets"]
    schedule = json.loads(target["Input"])
    assert schedule["remediation_function"] == "deploy-guard-remediate"
    [task_target] = aws.client("events").list_targets_by_rule(Rule="deploy-guard-task-stopped")["Targets"]
    assert '"remediation_function": "deploy-guard-remediate"' in task_target["InputTransformer"]["InputTemplate"]

    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(package[0]))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)  # the playbook plans
    context = type("Context", (), {"function_name": "deploy-guard", "aws_request_id": "r-2"})()
    with packaged(package[0]) as lambda_handler:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deploy-guard")
        assert lambda_handler.handler(schedule, context)["exit_code"] == 0  # healthy: known-good recorded
        bad = aws.task_definition("api", [("app", f"{repo}:broken")])
        aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
        sim.tick()
        swept = lambda_handler.handler(schedule, context)
        assert swept["exit_code"] == 1 and swept["remediation_started"] == swept["opened"] != []
        [(function, payload)] = aws.sandbox.invocations
        assert function == "deploy-guard-remediate" and json.loads(payload) == {"incident": swept["opened"][0]}

        def tick(seconds: float) -> None:
            sim.advance(seconds)
            sim.tick()

        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deploy-guard-remediate")
        monkeypatch.setattr("time.sleep", tick)  # the action waits for the service through the simulator
        repaired = lambda_handler.remediate_handler(json.loads(payload), context)
    assert repaired["status"] == "repaired" and repaired["mode"] == "act" and repaired["exit_code"] == 0
    assert [(r["action"]["kind"], r["status"]) for r in repaired["results"]] == [("ecs_rollback", "verified")]
    svc = aws.client("ecs").describe_services(cluster="prod", services=["api"])["services"][0]
    assert svc["taskDefinition"] == good and svc["runningCount"] == svc["desiredCount"] == 2
    keys = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=out["state_bucket"])["Contents"]}
    assert any(k.startswith(f"watch/journal/{swept['opened'][0]}") for k in keys), keys
