"""One replay per real incident class: the earliest point deploy-guard catches it, and AWS state afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.config import load_config
from guard.gateways.aws import AwsSession, AwsSettings
from guard.models import Cause
from guard.notify.routes import build_routes
from guard.records import known_good_service
from guard.sandbox.ecs_sim import PULL_WRONG_PLATFORM, EcsSimulator
from guard.sandbox.lifecycle import apply_lifecycle_policies, put_lifecycle_policy
from guard.sandbox.scenarios import Scenario
from guard.sandbox.webhook_server import WebhookSandbox
from tests.support.guardrun import GuardRun, export_task_definition
from tests.support.remedyrun import GOOD, World
from tests.support.watchrun import Sweep, steady_service

pytestmark = pytest.mark.slow


def _failed_starts(aws: Scenario, service: str = "api") -> list[str]:
    """stoppedReason of every task of prod/`service` that failed to start, as DescribeTasks answers."""
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster="prod")["taskArns"]
    tasks = ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"] if arns else []
    return [t["stoppedReason"] for t in tasks
            if t["group"] == f"service:{service}" and t.get("stopCode") == "TaskFailedToStart"]


def _steady_on(svc: dict[str, Any], revision: str) -> bool:
    [deployment] = svc["deployments"]
    return bool(svc["taskDefinition"].endswith(f"task-definition/{revision}") and svc["runningCount"] == 2
                and deployment["rolloutState"] == "COMPLETED")


def test_undeclared_env_var_between_staging_and_prod(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    env = [("LOG_LEVEL", "info"), ("PORT", "8080")]
    staging = aws.task_definition("api-staging", [("web", f"{repo}:v1")], environment=env)
    prod = aws.task_definition("api-prod", [("web", f"{repo}:v1")], environment=[*env, ("PAYMENTS_SANDBOX", "1")])
    files = (export_task_definition(aws, staging, tmp_path / "staging.json"),
             export_task_definition(aws, prod, tmp_path / "prod.json"))
    blocked = guard("--parity", *files)  # caught before anything is deployed
    assert blocked.code == 1
    [finding] = [f for f in blocked.doc["findings"] if f["severity"] != "info"]  # info: PRV001 had no commit
    assert finding["check_id"] == "CFG001" and finding["evidence"]["facet"] == "env:web.PAYMENTS_SANDBOX"
    assert "PAYMENTS_SANDBOX" in finding["message"]
    (tmp_path / "guard.toml").write_text('[parity]\nignore = ["env:*.PAYMENTS_SANDBOX"]\n')
    declared = guard("--parity", *files)
    assert declared.code == 0 and declared.doc["unverified"] == []
    assert [f["check_id"] for f in declared.doc["findings"]] == ["PRV001"]
    assert aws.client("ecs").list_task_definitions()["taskDefinitionArns"] == [staging, prod]  # the gate only read
    assert aws.client("ecs").list_clusters()["clusterArns"] == []


def test_arm64_image_on_x86_64_tasks(world: World, guard: GuardRun, tmp_path: Path) -> None:
    aws = world.aws
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "arm1", arch="arm64")
    td = aws.task_definition("api", [("app", f"{repo}:arm1")])  # runtimePlatform X86_64
    blocked = guard("--task-def", export_task_definition(aws, td, tmp_path / "td.json"))  # caught pre-deploy
    assert blocked.code == 1
    [finding] = blocked.findings("IMG002")
    assert finding["evidence"]["image_platforms"] == ["linux/arm64"] and finding["evidence"]["runtime"] == "linux/amd64"

    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=td)  # the gate was bypassed
    world.sim.tick()
    reasons = _failed_starts(aws)
    assert reasons and set(reasons) == {PULL_WRONG_PLATFORM.format(platform="linux/amd64")}
    report = world.sweep()
    [inc] = report.incidents
    assert inc.cause is Cause.WRONG_ARCH and inc.resources == ("ecs:prod/api",) and not inc.latent
    assert [i.id for i in report.triage.opened] == [inc.id] and report.exit_code == 1

    fix = world.remediate(inc)
    assert fix.status == "repaired", fix.to_json()
    assert [(r.action["kind"], r.status) for r in fix.results] == [("ecs_rollback", "verified")]
    assert world.calls("ecs:UpdateService") == 1
    assert _steady_on(world.service(), "api:1") and _steady_on(world.service("worker"), "worker:1")


def test_lifecycle_policy_expires_the_image_under_a_steady_service(aws: Scenario, sim: EcsSimulator,
                                                                   sweep: Sweep) -> None:
    repo = aws.repository("shop/api")
    running = aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    put_lifecycle_policy(aws.sandbox, "shop/api", {"rules": [{
        "rulePriority": 1, "description": "keep the last 2 images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2},
        "action": {"type": "expire"}}]})
    assert apply_lifecycle_policies(aws.sandbox) == []
    [forecast] = sweep().incidents  # IMG101 names the rule before it acts: two more pushes
    assert forecast.cause is Cause.IMAGE_EXPIRY and forecast.cause_key == f"{repo}@{running}" and forecast.latent
    assert {(s.watcher_id, s.evidence["rule_description"], s.evidence["pushes_left"]) for s in forecast.signals} \
        == {("IMG101", "keep the last 2 images", 2)}
    newer = {aws.push_image("shop/api", tag) for tag in ("v2", "v3")}
    assert apply_lifecycle_policies(aws.sandbox) == [("shop/api", running)]
    details = aws.client("ecr").describe_images(repositoryName="shop/api")["imageDetails"]
    assert {d["imageDigest"] for d in details} == newer
    sim.tick(3)  # the tasks keep running on the pulled image

    latent = sweep()  # caught by the next sweep, before any task restarts
    [inc] = latent.incidents
    assert inc.latent and inc.cause is Cause.MISSING_IMAGE and inc.cause_key == f"{repo}:v1"
    assert inc.resources == ("ecs:prod/api",) and {s.watcher_id for s in inc.signals} == {"ECS105"}
    assert [i.id for i in latent.triage.opened] == [inc.id] and latent.exit_code == 1
    assert [i.id for i in latent.triage.resolved] == [forecast.id]  # the forecast came true
    assert _failed_starts(aws) == [] and aws.client("ecs").describe_services(
        cluster="prod", services=["api"])["services"][0]["runningCount"] == 2

    assert sim.restart_tasks("prod", "api") == 2
    sim.tick()
    active = sweep()
    [same] = active.incidents
    assert same.id == inc.id and not same.latent and {s.watcher_id for s in same.signals} == {"ECS101", "ECS105"}
    assert [i.id for i in active.triage.updated] == [inc.id] and active.triage.opened == ()
    reasons = _failed_starts(aws)
    assert reasons and all("CannotPullContainerError" in r and running in r for r in reasons)


def test_silently_broken_notification_route(aws: Scenario, sim: EcsSimulator, sweep: Sweep, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "guard.toml").write_text('[notify]\nheartbeat = true\n[[notify.routes]]\ntype = "slack"\n'
                                         'name = "oncall-slack"\nurl_env = "SLACK_WEBHOOK_URL"\n')
    monkeypatch.chdir(tmp_path)
    cloudwatch = aws.client("cloudwatch")
    with WebhookSandbox() as hook:
        hook.fail_with(404)
        tested = CliRunner().invoke(main, ["notify", "--test"], env={"SLACK_WEBHOOK_URL": hook.url})
        assert tested.exit_code == 1  # caught by the route self-test, before any incident needs it
        assert "FAILED oncall-slack" in tested.stdout and "HTTP 404" in tested.stdout
        assert hook.hook_path.strip("/") not in tested.output  # the webhook URL is a secret
        assert hook.received == [] and hook.attempts == 1  # a 4xx is final: not retried

        repo = aws.repository("shop/api")
        aws.push_image("shop/api", "v1")
        steady_service(aws, sim, "api", f"{repo}:v1")
        aws.delete_image("shop/api", tag="v1")
        assert cloudwatch.list_metrics(Namespace="DeployGuard")["Metrics"] == []
        config = load_config()
        session = AwsSession(AwsSettings(max_attempts=1))
        routes = build_routes(config.notify, session, session.stats, environ={"SLACK_WEBHOOK_URL": hook.url})
        report = sweep(routes=routes, heartbeat=config.notify.heartbeat)
        assert report.exit_code == 3 and len(report.incidents) == 1
        [unverified] = report.unverified
        assert (unverified.check_id, unverified.target) == ("GRD002", "oncall-slack")
        assert [(r.route, r.ok) for r in report.notifications] == [("oncall-slack", False)]
        assert hook.received == []
    now = datetime.now(UTC)
    beats = cloudwatch.get_metric_statistics(Namespace="DeployGuard", MetricName="Heartbeat", Statistics=["Sum"],
                                             StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1),
                                             Period=60)["Datapoints"]
    assert sum(b["Sum"] for b in beats) == 1.0  # the sweep still beat: silence would page someone


def test_execution_role_deleted_when_its_owner_left(world: World) -> None:
    aws, sim = world.aws, world.sim
    role = aws.role("exec")
    td = aws.task_definition("api", [("app", f"{aws.repository('shop/api')}:{GOOD[:7]}")], execution_role=role)
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=td)
    sim.tick(2)
    assert world.sweep().known_good == ("ecs:prod/api",)  # recorded again: revision 2, with the role
    record = known_good_service(world.store, "prod", "api")
    assert record is not None and record.task_definition == td
    aws.delete_role("exec")
    sim.tick(2)
    [latent] = world.sweep().incidents  # running tasks hold their credentials, but ECS106 sees the role gone
    assert latent.latent and latent.cause is Cause.EXECUTION_ROLE and latent.cause_key == role

    sim.restart_tasks("prod", "api")
    sim.tick()
    reasons = _failed_starts(aws)
    assert reasons and all(r.startswith("ResourceInitializationError") and "AccessDeniedException" in r
                           and "assumed-role/exec/" in r for r in reasons)
    report = world.sweep()  # the first sweep after the restart: the same incident, now active
    [inc] = report.incidents
    assert inc.cause is Cause.EXECUTION_ROLE and inc.cause_key == role and inc.resources == ("ecs:prod/api",)
    assert inc.id == latent.id and not inc.latent

    fix = world.remediate(inc)
    assert fix.status == "escalated", fix.to_json()
    assert [(r.action["kind"], r.status) for r in fix.results] == [("escalate", "verified")]
    assert world.calls("ecs:UpdateService") == 0
    notes = world.notes.getvalue()
    assert inc.id in notes and "rollback cannot help" in notes and "execution role" in notes
    svc = world.service()
    assert svc["taskDefinition"] == td and svc["runningCount"] == 0  # left as it was, for a human
    assert _steady_on(world.service("worker"), "worker:1")
