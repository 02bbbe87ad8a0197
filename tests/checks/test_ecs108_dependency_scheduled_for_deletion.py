"""ECS108: a secret (or its KMS key) scheduled for deletion under a steady service, seen before any restart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.iam import actions_for
from guard.models import Cause, Severity
from guard.sandbox import ecs_sim
from guard.sandbox.aws import AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.scenarios import Scenario
from guard.watch import WatchScope
from tests.support.watchrun import Sweep, steady_service

TERRAFORM_IAM = Path(__file__).parents[2] / "deploy" / "terraform" / "iam.tf"


@pytest.fixture
def proxy(aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Product clients reach the sandbox through the fault proxy."""
    with FaultProxy(aws_sandbox.endpoint_url) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


def _service_with_secret(aws: Scenario, sim: EcsSimulator, name: str = "api", secret: str = "db-password",
                         kms_key: str | None = None) -> str:
    """A steady service injecting one Secrets Manager secret (optionally under a customer-managed key)."""
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    extra = {"KmsKeyId": kms_key} if kms_key else {}
    arn = str(aws.client("secretsmanager").create_secret(Name=secret, SecretString="s3cr3t", **extra)["ARN"])
    steady_service(aws, sim, name, f"{repo}:v1", secrets=[("DB_PASSWORD", arn)])
    return arn


def test_secret_scheduled_for_deletion_is_a_latent_incident_then_the_same_active_one(
        aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    arn = _service_with_secret(aws, sim)
    first = sweep()
    assert first.incidents == () and first.unverified == ()
    assert first.stats["by_api"]["secretsmanager:DescribeSecret"] == 1
    assert "kms:DescribeKey" not in first.stats["by_api"]  # aws/secretsmanager: an AWS-managed key, never deleted
    aws.client("secretsmanager").delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    report = sweep()
    assert report.exit_code == 1
    [latent] = report.incidents
    assert latent.latent and latent.cause is Cause.SECRET and latent.cause_key == arn
    assert latent.severity is Severity.ERROR
    [signal] = latent.signals
    assert signal.watcher_id == "ECS108" and "scheduled for deletion on " in signal.message
    assert signal.evidence["state"] == "scheduled_for_deletion" and signal.evidence["deletion_date"]
    sim.restart_tasks("prod", "api")  # ECS cannot read a secret marked for deletion: the restart fails
    sim.tick()
    active_report = sweep()
    [active] = active_report.incidents
    assert active.id == latent.id and not active.latent
    assert {s.watcher_id for s in active.signals} == {"ECS101", "ECS108"}


def test_restored_secret_resolves_and_a_forced_deletion_stays_open(aws: Scenario, sim: EcsSimulator,
                                                                   sweep: Sweep) -> None:
    arn = _service_with_secret(aws, sim)
    sm = aws.client("secretsmanager")
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=30)
    [opened] = sweep().incidents
    sm.restore_secret(SecretId=arn)
    healed = sweep()
    assert healed.incidents == () and [i.cause_key for i in healed.triage.resolved] == [arn]
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)  # the window passing looks the same
    [gone] = sweep().incidents
    assert gone.cause_key == arn and gone.signals[0].evidence["state"] == "deleted"
    assert opened.cause_key == gone.cause_key


def test_kms_key_pending_deletion_coalesces_services_and_reads_each_key_once(aws: Scenario, sim: EcsSimulator,
                                                                              sweep: Sweep) -> None:
    kms = aws.client("kms")
    key = kms.create_key(Description="app secrets")["KeyMetadata"]
    kms.create_alias(AliasName="alias/app-secrets", TargetKeyId=key["KeyId"])
    _service_with_secret(aws, sim, "api", "api-db", kms_key="alias/app-secrets")
    _service_with_secret(aws, sim, "worker", "worker-db", kms_key=key["Arn"])
    healthy = sweep()
    assert healthy.incidents == ()
    assert healthy.stats["by_api"]["secretsmanager:DescribeSecret"] == 2
    assert healthy.stats["by_api"]["kms:DescribeKey"] == 2  # the alias and the ARN: two names, one call each
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    [incident] = sweep().incidents
    assert incident.cause is Cause.SECRET and incident.cause_key == key["Arn"] and incident.latent
    assert incident.resources == ("ecs:prod/api", "ecs:prod/worker")
    assert all("pending deletion on " in s.message and s.evidence["state"] == "PendingDeletion"
               for s in incident.signals)
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert sweep().incidents == ()


def test_kms_key_pending_deletion_is_latent_then_fails_the_restart_in_the_same_incident(
        aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    kms = aws.client("kms")
    key = kms.create_key(Description="api secrets")["KeyMetadata"]
    kms.create_alias(AliasName="alias/api-secrets", TargetKeyId=key["KeyId"])
    secret = _service_with_secret(aws, sim, "api", "api-db", kms_key="alias/api-secrets")
    assert sweep().incidents == ()
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    sim.tick(2)  # running tasks keep the value they read: nothing breaks yet
    latent_report = sweep()
    [latent] = latent_report.incidents
    assert latent_report.exit_code == 1 and latent.latent and latent.cause_key == key["Arn"]
    assert [s.watcher_id for s in latent.signals] == ["ECS108"]

    assert sim.restart_tasks("prod", "api") == 2
    sim.tick()
    ecs = aws.client("ecs")
    tasks = ecs.describe_tasks(cluster="prod", tasks=ecs.list_tasks(cluster="prod")["taskArns"])["tasks"]
    failed = [t for t in tasks if t["stopCode"] == "TaskFailedToStart"] if tasks else []
    reason = (f"failed to fetch secret {secret} from secrets manager: InvalidRequestException: {key['Arn']} is "
              "pending deletion.")
    assert len(failed) == 2 and all(reason in t["stoppedReason"] for t in failed)
    assert all(t["stoppedReason"].startswith("ResourceInitializationError: ") for t in failed)
    assert not [t for t in tasks if t["lastStatus"] == "RUNNING"]
    live_report = sweep()
    [live] = live_report.incidents
    assert live_report.exit_code == 1 and live.id == latent.id and not live.latent and live.cause_key == key["Arn"]
    assert live_report.triage.opened == () and [i.id for i in live_report.triage.updated] == [latent.id]
    by_watcher = {s.watcher_id: s for s in live.signals}
    assert set(by_watcher) == {"ECS101", "ECS108"}
    assert by_watcher["ECS101"].message.startswith("2 task(s) failed to start: the KMS key of a secret")
    assert reason in str(by_watcher["ECS101"].evidence["stopped_reason"])


def test_only_the_secrets_of_services_in_scope_are_read(aws: Scenario, sim: EcsSimulator,
                                                                           sweep: Sweep) -> None:
    api = _service_with_secret(aws, sim, "api", "api-db")
    _service_with_secret(aws, sim, "worker", "worker-db")
    aws.client("secretsmanager").delete_secret(SecretId=api, RecoveryWindowInDays=7)
    report = sweep(WatchScope(clusters=("prod",), services=("worker",)))
    assert report.incidents == () and report.stats["by_api"]["secretsmanager:DescribeSecret"] == 1
    [incident] = sweep(WatchScope(clusters=("prod",), services=("api",))).incidents
    assert incident.cause_key == api and incident.resources == ("ecs:prod/api",)


def test_a_throttled_lookup_is_unverified_never_clean(proxy: FaultProxy, aws: Scenario, sim: EcsSimulator,
                                                      sweep: Sweep) -> None:
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    _service_with_secret(aws, sim, "api", "api-db", kms_key=key["Arn"])
    _service_with_secret(aws, sim, "worker", "worker-db")
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    proxy.throttle(match=operation("DescribeKey"))
    report = sweep()
    assert report.exit_code == 3 and report.incidents == ()
    [unverified] = [u for u in report.unverified if u.check_id == "ECS108"]
    assert unverified.target == "ecs:prod/api" and unverified.error_code == "Throttled"


def test_watch_role_grants_every_read_the_watcher_needs() -> None:
    granted = set(re.findall(r'"([a-z0-9-]+:[A-Za-z*]+)"', TERRAFORM_IAM.read_text()))
    wanted = {"secretsmanager:DescribeSecret", "kms:DescribeKey"}
    assert wanted <= actions_for(["watch"]) and wanted <= granted


def test_a_kms_refusal_ecs_words_without_the_key_still_joins_the_keys_incident(
        aws: Scenario, sim: EcsSimulator, sweep: Sweep, monkeypatch: pytest.MonkeyPatch) -> None:
    # Secrets Manager may answer a key it cannot use with its own words, naming no key (seen in the wild:
    # "AccessDeniedException: Access to KMS is not allowed"); the snapshot knows the secret's key and its state.
    worded = ecs_sim.SECRET_KEY_UNUSABLE.split("InvalidRequestException")[0] + \
        "AccessDeniedException: Access to KMS is not allowed status code: 400, request id: {request}"
    monkeypatch.setattr(ecs_sim, "SECRET_KEY_UNUSABLE", worded)
    kms = aws.client("kms")
    key = kms.create_key(Description="api secrets")["KeyMetadata"]
    _service_with_secret(aws, sim, "api", "api-db", kms_key=key["Arn"])
    kms.disable_key(KeyId=key["KeyId"])
    [latent] = sweep().incidents
    assert latent.latent and latent.cause_key == key["Arn"]
    sim.restart_tasks("prod", "api")
    sim.tick()
    ecs = aws.client("ecs")
    tasks = ecs.describe_tasks(cluster="prod", tasks=ecs.list_tasks(cluster="prod")["taskArns"])["tasks"]
    assert tasks and all("Access to KMS is not allowed" in t["stoppedReason"] and key["Arn"] not in t["stoppedReason"]
                         for t in tasks if t["stopCode"] == "TaskFailedToStart")
    [live] = sweep().incidents
    assert live.id == latent.id and not live.latent and live.cause_key == key["Arn"]
    ecs101 = next(s for s in live.signals if s.watcher_id == "ECS101")
    assert ecs101.message.startswith("2 task(s) failed to start: the KMS key of a secret the task injects")
